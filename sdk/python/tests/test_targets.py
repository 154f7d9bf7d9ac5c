"""``@hm.target()``: memoised building blocks injected by parameter name."""

from typing import Annotated

import pytest
from helpers import keys, parents, render_one, steps

import harmont as hm
from harmont._deps import _TARGETS_BY_NAME, clear_target_names, resolve_deps, validate_target_signature
from harmont._step import Step
from harmont._target import clear_target_cache


def test_a_target_is_a_memoised_zero_argument_callable():
    calls = []

    @hm.target()
    def apt() -> hm.Step:
        calls.append(1)
        return hm.sh("apt-get update")

    assert apt() is apt()
    assert len(calls) == 1
    assert apt.__name__ == "apt" and apt.__wrapped__ is not None  # type: ignore[attr-defined]
    clear_target_cache()
    apt()
    assert len(calls) == 2


def test_targets_calling_targets_share_one_value():
    @hm.target()
    def apt() -> hm.Step:
        return hm.sh("apt-get update", label="apt")

    @hm.target()
    def venv() -> hm.Step:
        return apt().sh("python3 -m venv .venv")

    @hm.target()
    def api() -> hm.Step:
        return apt().sh("cabal build")

    assert venv().parent is api().parent


def test_parameters_receive_targets_by_name():
    @hm.target()
    def apt() -> hm.Step:
        return hm.sh("apt-get update", label="apt")

    @hm.target()
    def tool(apt: hm.Target[hm.Step]) -> hm.Step:
        return apt.sh("install tool", label="tool")

    @hm.pipeline("ci")
    def ci(tool: hm.Target[hm.Step], apt: hm.Target[hm.Step]):
        return (tool.sh("use", label="use"), apt.sh("other", label="other"))

    ir = render_one()["definition"]
    assert keys(ir) == ["apt", "tool", "use", "other"]
    assert parents(ir) == {"tool": "apt", "use": "tool", "other": "apt"}


def test_an_unsubscripted_target_annotation_works():
    @hm.target()
    def project():
        return hm.go(path=".")

    @hm.pipeline("ci")
    def ci(project: hm.Target):
        return project.build()

    assert keys(render_one()["definition"]) == ["apt-base", "install", "build"]


def test_string_annotations_are_evaluated_in_the_functions_module():
    namespace: dict = {}
    exec(
        "from __future__ import annotations\n"
        "import harmont as hm\n"
        "from typing import Annotated\n"
        "@hm.target()\n"
        "def base(img: Annotated[hm.Step, hm.BaseImage('debian:12')]) -> hm.Step:\n"
        "    return img.sh('apt-get update', label='base')\n"
        "@hm.pipeline('ci')\n"
        "def ci(base: hm.Target[hm.Step], extra: str = 'x') -> tuple[hm.Step, ...]:\n"
        "    return (base.sh('echo ' + extra, label='echo'),)\n",
        namespace,
    )
    ir = render_one()["definition"]
    assert steps(ir)["base"]["image"] == "debian:12"
    assert steps(ir)["echo"]["cmd"] == "echo x"


def test_an_annotation_that_does_not_evaluate_hides_every_marker():
    # As with typing.get_type_hints, whose failure makes Harmont fall back to the raw strings.
    namespace: dict = {}
    exec(
        "from __future__ import annotations\n"
        "import harmont as hm\n"
        "def fn(dep: hm.Target[hm.Step], other: Missing = None): ...\n",
        namespace,
    )
    with pytest.raises(TypeError, match="hm: parameter 'dep' has no marker and no default"):
        validate_target_signature(namespace["fn"])


def test_base_image_injects_a_scratch_root_in_that_image():
    def fn(base: Annotated[Step, hm.BaseImage("debian:12")]) -> Step: ...

    base = resolve_deps(fn)["base"]
    assert base == Step(image="debian:12")
    assert base.sh("apt-get update").image == "debian:12"


def test_base_image_needs_a_non_empty_string():
    for bad in ("", 42, None):
        with pytest.raises(TypeError, match=r"hm: BaseImage\(\.\.\.\) takes a non-empty image string"):
            hm.BaseImage(bad)  # type: ignore[arg-type]


def test_base_image_markers_compare_by_image():
    assert hm.BaseImage("a") == hm.BaseImage("a") != hm.BaseImage("b")
    assert hash(hm.BaseImage("a")) == hash(hm.BaseImage("a"))
    assert repr(hm.BaseImage("a")) == "<hm.BaseImage('a') marker>"


def test_target_is_typings_annotated():
    import typing

    from harmont._typing import _TARGET_MARKER

    alias = hm.Target[Step]
    assert typing.get_origin(alias) is typing.Annotated
    assert typing.get_args(alias) == (Step, _TARGET_MARKER)
    assert typing.get_args(hm.Target)[1] is _TARGET_MARKER


def test_defaults_fill_unannotated_parameters():
    @hm.target()
    def tagged(tag: str = "ubuntu:24.04", *, extra: int = 2) -> hm.Step:
        return hm.sh(f"echo {tag} {extra}")

    assert tagged().cmd == "echo ubuntu:24.04 2"


def test_a_target_marker_with_a_default_still_needs_the_target():
    def fn(api: hm.Target[Step] = None) -> Step: ...  # type: ignore[assignment]

    with pytest.raises(TypeError, match="hm: target 'api' not found"):
        resolve_deps(fn)


def test_a_missing_target_is_a_type_error_when_evaluated():
    @hm.target()
    def venv(missing: hm.Target[hm.Step]) -> hm.Step:
        return missing

    with pytest.raises(TypeError, match="hm: target 'missing' not found\n  → declare it with @hm.target"):
        venv()


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("def fn(*args): ...", r"hm: target functions cannot take \*args"),
        ("def fn(**kwargs): ...", r"hm: target functions cannot take \*\*kwargs"),
        ("def fn(x, /): ...", r"hm: target functions cannot have positional-only parameters \(got 'x'\)"),
        ("def fn(x): ...", r"hm: parameter 'x' has no marker and no default\n  → annotate with Target\[T\] \(target dep\)"),
        ("def fn(x: int): ...", r"hm: parameter 'x' has no marker and no default"),
        ("def fn(a, *args): ...", r"hm: parameter 'a' has no marker"),
        ("def fn(*, k): ...", r"hm: parameter 'k' has no marker"),
    ],
)
def test_bad_signatures_are_refused_at_decoration(source, message):
    namespace: dict = {}
    exec(source, namespace)
    with pytest.raises(TypeError, match=message):
        validate_target_signature(namespace["fn"])
    with pytest.raises(TypeError, match=message):
        hm.target()(namespace["fn"])
    with pytest.raises(TypeError, match=message):
        hm.pipeline("ci")(namespace["fn"])


def test_cycles_are_found():
    @hm.target()
    def a(b: hm.Target[hm.Step]) -> hm.Step:
        return b.sh("a")

    @hm.target()
    def b(a: hm.Target[hm.Step]) -> hm.Step:
        return a.sh("b")

    with pytest.raises(RuntimeError, match="hm: dependency cycle detected\n  → a → b → a\n  fix: break the cycle"):
        a()


def test_a_target_calling_itself_is_a_cycle():
    @hm.target()
    def loop() -> hm.Step:
        return loop()

    with pytest.raises(RuntimeError, match="loop → loop"):
        loop()


def test_duplicate_names_and_explicit_names():
    @hm.target()
    def apt() -> hm.Step:
        return hm.sh("a")

    with pytest.raises(ValueError, match="hm: duplicate target name 'apt'\n  → each @hm.target must have a unique name"):

        @hm.target()
        def apt() -> hm.Step:  # noqa: F811
            return hm.sh("b")

    @hm.target(name="apt-b")
    def other() -> hm.Step:
        return hm.sh("b")

    assert "apt-b" in _TARGETS_BY_NAME and "other" not in _TARGETS_BY_NAME
    clear_target_names()
    assert not _TARGETS_BY_NAME


def test_bare_decorator_without_parentheses():
    @hm.target
    def base() -> hm.Step:
        return hm.sh("base")

    assert base().cmd == "base"
    assert "base" in _TARGETS_BY_NAME
    with pytest.raises(TypeError, match="hm.target: decorates a function, got str"):
        hm.target("base")  # type: ignore[call-overload]


def test_targets_are_evaluated_afresh_for_each_render():
    calls = []

    @hm.target()
    def base() -> hm.Step:
        calls.append(1)
        return hm.sh("base", label="base")

    @hm.pipeline("one")
    def one(base: hm.Target[hm.Step]):
        return base.sh("1")

    @hm.pipeline("two")
    def two(base: hm.Target[hm.Step]):
        return base.sh("2")

    hm.dump_registry_json()
    assert len(calls) == 1  # shared by both pipelines of one render
    hm.dump_registry_json()
    assert len(calls) == 2


def test_bound_methods_are_read_through_inspect():
    @hm.target()
    def a() -> Step:
        return hm.sh("a")

    class Holder:
        def method(self, a: hm.Target[Step], b: int = 2) -> Step:
            return a

    assert resolve_deps(Holder().method) == {"a": a(), "b": 2}
