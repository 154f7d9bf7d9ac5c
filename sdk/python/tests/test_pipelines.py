"""``@hm.pipeline(...)``: registration, slugs, settings, return values, the envelope."""

import json

import pytest
from helpers import keys, render_all, render_one

import harmont as hm
from harmont._registry import REGISTRATIONS, PipelineRegistration, clear_registry, register


def test_registration_defaults():
    @hm.pipeline("ci")
    def whatever() -> hm.Step:
        return hm.sh("make")

    (reg,) = REGISTRATIONS
    assert (reg.slug, reg.name, reg.triggers, reg.allow_manual, reg.env, reg.timeout) == (
        "ci",
        "ci",
        (),
        True,
        None,
        None,
    )
    assert isinstance(whatever(), hm.Step)


def test_settings_are_kept():
    triggers = [hm.push(branch="main"), hm.pr()]

    @hm.pipeline("ci", name="Continuous", triggers=triggers, allow_manual=False, env={"A": "1"}, timeout="1h")
    def ci() -> hm.Step:
        return hm.sh("make")

    reg = REGISTRATIONS[0]
    assert (reg.name, reg.triggers, reg.allow_manual, reg.env, reg.timeout) == (
        "Continuous",
        tuple(triggers),
        False,
        {"A": "1"},
        "1h",
    )


def test_the_slug_defaults_to_the_function_name():
    @hm.pipeline()
    def nightly() -> hm.Step:
        return hm.sh("x")

    assert REGISTRATIONS[0].slug == "nightly"


def test_bare_decorator_without_parentheses():
    @hm.pipeline
    def nightly() -> hm.Step:
        return hm.sh("x")

    assert REGISTRATIONS[0].slug == "nightly"
    assert nightly().cmd == "x"


@pytest.mark.parametrize("slug", ["CI", "1ci", "a" * 65, "", "slow_build", "-ci", "c i"])
def test_invalid_slugs(slug):
    with pytest.raises(ValueError, match=f"invalid pipeline slug {slug!r}\n  → use lowercase letters"):
        hm.pipeline(slug)(lambda: hm.sh("x"))


def test_a_function_name_that_is_no_slug_is_refused():
    with pytest.raises(ValueError, match="invalid pipeline slug 'slow_build'"):

        @hm.pipeline()
        def slow_build() -> hm.Step:
            return hm.sh("x")


@pytest.mark.parametrize("slug", ["a", "ci-2", "a" * 64, "ci\n"])
def test_valid_slugs(slug):
    hm.pipeline(slug)(lambda: hm.sh("x"))
    assert REGISTRATIONS[-1].slug == slug


def test_a_slug_that_is_no_string_is_a_type_error():
    with pytest.raises(TypeError, match="a pipeline slug must be a string, got int"):
        hm.pipeline(3)(lambda: hm.sh("x"))


def test_duplicate_slugs():
    hm.pipeline("ci")(lambda: hm.sh("x"))
    with pytest.raises(ValueError, match="duplicate pipeline slug 'ci'\n  → each @hm.pipeline must have a unique slug"):
        hm.pipeline("ci")(lambda: hm.sh("y"))


def test_the_registry_itself():
    reg = PipelineRegistration(slug="ci", name="CI", triggers=(), allow_manual=True, env=None, fn=lambda: None)
    register(reg)
    assert REGISTRATIONS == [reg]
    assert reg.timeout is None
    clear_registry()
    assert REGISTRATIONS == []


def test_a_trigger_that_is_not_one_is_refused():
    with pytest.raises(TypeError, match="a trigger must be hm.push"):
        hm.pipeline("ci", triggers=["push"])(lambda: hm.sh("x"))


def test_the_entry():
    @hm.pipeline("ci", name="CI", env={"CI": "true"}, triggers=[hm.push(branch="main")], timeout="20m")
    def ci():
        return hm.sh("make", label="make")

    entry = render_one()
    assert entry == {
        "slug": "ci",
        "name": "CI",
        "allow_manual": True,
        "triggers": [{"event": "push", "branches": ["main"]}],
        "definition": {
            "version": "0",
            "timeout_seconds": 1200,
            "graph": {
                "nodes": [
                    {
                        "step": {"key": "make", "cmd": "make", "label": "make", "image": "ubuntu:24.04"},
                        "env": {"DEBIAN_FRONTEND": "noninteractive", "TERM": "dumb", "CI": "true"},
                    }
                ],
                "node_holes": [],
                "edge_property": "directed",
                "edges": [],
            },
        },
    }


def test_return_values():
    a, b = hm.sh("a", label="a"), hm.sh("b", label="b")
    hm.pipeline("one")(lambda: a)
    hm.pipeline("tuple")(lambda: (a, b))
    hm.pipeline("list")(lambda: [a, hm.wait(), b])
    hm.pipeline("nested")(lambda: [[a], (b,)])
    hm.pipeline("rust")(lambda: hm.rust.project())
    hm.pipeline("rust-tc")(lambda: hm.rust.toolchain())
    hm.pipeline("js")(lambda: hm.js.project(runtime="node"))
    hm.pipeline("uv")(lambda: hm.py.uv())
    got = {e["slug"]: keys(e["definition"]) for e in render_all()}
    assert got["one"] == ["a"]
    assert got["tuple"] == got["list"] == got["nested"] == ["a", "b"]
    assert got["rust"] == ["apt-base", "rustup", "warmup", "test", "clippy", "fmt"]
    assert got["rust-tc"] == ["apt-base", "rustup", "build"]
    assert got["js"] == ["apt-base", "install", "deps"]
    assert got["uv"] == ["apt-base", "uv-install", "uv-sync", "test"]


@pytest.mark.parametrize("value", [42, "make", None, hm.go, {"a": 1}])
def test_a_return_value_that_is_no_leaf_names_the_pipeline(value):
    hm.pipeline("broken")(lambda: value)
    with pytest.raises(TypeError, match=r"pipeline 'broken': invalid return value\n  → hm.target: cannot use"):
        render_all()


def test_a_toolchain_without_a_default_action_is_no_leaf():
    hm.pipeline("go")(lambda: hm.go())
    with pytest.raises(TypeError, match="cannot use GoToolchain as a pipeline leaf"):
        render_all()


def test_an_empty_return_is_an_error():
    hm.pipeline("empty")(lambda: ())
    with pytest.raises(ValueError, match="pipeline must have at least one leaf"):
        render_all()


def test_dump_registry_json():
    assert json.loads(hm.dump_registry_json()) == {"schema_version": "1", "pipelines": []}

    @hm.pipeline("ci", env={"CI": "true"})
    def ci():
        return hm.sh("make", label="make", cache=hm.forever())

    text = hm.dump_registry_json(pipeline_org="acme", now=0, env={})
    envelope = json.loads(text)
    step = envelope["pipelines"][0]["definition"]["graph"]["nodes"][0]["step"]
    assert step["cache"]["policy"] == "forever" and len(step["cache"]["key"]) == 64
    assert text.startswith('{"schema_version": "1", "pipelines": [{"slug": "ci"')


def test_the_factory_and_the_decorator_render_alike():
    leaves = [hm.sh("a", label="a"), hm.wait(), hm.sh("b", label="b")]
    hm.pipeline("ci", env={"X": "1"}, timeout=60)(lambda: leaves)
    assert render_one()["definition"] == hm.pipeline(leaves, env={"X": "1"}, timeout=60)


def test_network_is_written_after_the_timeout_only_when_given():
    leaves = [hm.sh("a", label="a")]
    assert "network" not in hm.pipeline(leaves)
    ir = hm.pipeline(leaves, timeout=60, network="none")
    assert list(ir) == ["version", "timeout_seconds", "network", "graph"]
    assert ir["network"] == "none"
    assert hm.pipeline(leaves, network="host")["network"] == "host"

    hm.pipeline("ci", network="none")(lambda: leaves)
    (reg,) = REGISTRATIONS
    assert reg.network == "none"
    assert render_one()["definition"] == hm.pipeline(leaves, network="none")


def test_a_network_other_than_host_or_none_is_refused_where_it_is_written():
    leaves = [hm.sh("a")]
    with pytest.raises(ValueError, match="invalid pipeline network 'bridge'"):
        hm.pipeline(leaves, network="bridge")
    with pytest.raises(ValueError, match='use "host"'):
        hm.pipeline("ci", network="off")
    with pytest.raises(TypeError, match="network must be a string, got bool"):
        hm.pipeline(leaves, network=False)
    assert REGISTRATIONS == []
