"""Steps: immutable chain nodes, roots, forks, barriers and timeouts."""

import dataclasses
import pickle
from datetime import timedelta

import pytest

import harmont as hm
from harmont._step import Step, scratch, wait


def test_scratch_is_an_empty_root():
    root = hm.scratch()
    assert isinstance(root, Step)
    assert (root.cmd, root.parent, root.is_wait, root.image) == (None, None, False, None)


def test_sh_returns_a_child_and_leaves_the_parent_alone():
    root = scratch()
    a = root.sh("make a")
    b = root.sh("make b")
    assert a.parent is root and b.parent is root
    assert (a.cmd, b.cmd) == ("make a", "make b")
    assert root.cmd is None


def test_hm_sh_starts_a_chain_from_a_scratch_root():
    step = hm.sh("apt-get update", label="apt", key="apt", image="debian:12", env={"A": "1"})
    assert step.parent is not None and step.parent.cmd is None and step.parent.parent is None
    assert (step.label, step.key_override, step.image, step.env) == ("apt", "apt", "debian:12", {"A": "1"})


def test_every_keyword_of_sh_is_kept():
    policy = hm.forever()
    step = scratch().sh(
        "run",
        label="l",
        cache=policy,
        env={"X": "y"},
        image="img",
        runner="vm",
        runner_args={"cpus": 2},
        key="k",
    )
    assert step.cache is policy
    assert (step.runner, step.runner_args, step.key_override) == ("vm", {"cpus": 2}, "k")


def test_cwd_prefixes_a_cd():
    assert hm.sh("pytest -v", cwd="sdk/py").cmd == "cd sdk/py && pytest -v"
    assert scratch().sh("x", cwd=None).cmd == "x"


def test_an_empty_cwd_is_refused():
    with pytest.raises(ValueError, match="hm: cwd must be a non-empty path"):
        hm.sh("make", cwd="")


def test_a_command_that_is_not_a_string_is_a_type_error():
    with pytest.raises(TypeError, match="takes the command as a string, got int"):
        hm.sh(3)  # type: ignore[arg-type]


def test_a_scratch_roots_image_goes_to_its_first_command_only():
    root = Step(image="alpine:3")
    first = root.sh("a")
    assert first.image == "alpine:3"
    assert first.sh("b").image is None
    assert root.sh("c", image="debian:12").image == "debian:12"


def test_fork_is_a_labelled_pass_through():
    base = hm.sh("install")
    fork = base.fork(label="branch")
    assert (fork.cmd, fork.parent, fork.label, fork.is_wait) == (None, base, "branch", False)
    assert base.fork().label is None


def test_wait_is_a_step():
    barrier = hm.wait()
    assert isinstance(barrier, Step)
    assert (barrier.is_wait, barrier.continue_on_failure, barrier.cmd, barrier.parent) == (True, False, None, None)
    assert wait(continue_on_failure=True).continue_on_failure is True


def test_steps_are_frozen():
    step = hm.sh("make")
    with pytest.raises(dataclasses.FrozenInstanceError, match="cannot assign to field 'cmd'"):
        step.cmd = "other"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        del step.label
    with pytest.raises(dataclasses.FrozenInstanceError):
        step.anything = 1  # type: ignore[attr-defined]


def test_steps_compare_and_hash_by_value_like_a_frozen_dataclass():
    root = scratch()
    assert root.sh("a", label="x") == root.sh("a", label="x")
    assert root.sh("a") != root.sh("b")
    assert hm.wait() == hm.wait()
    assert hm.wait() != hm.wait(continue_on_failure=True)
    assert hash(root.sh("a")) == hash(root.sh("a"))
    assert Step() != object()
    with pytest.raises(TypeError, match="unhashable"):
        hash(root.sh("a", env={"A": "1"}))


def test_repr_names_the_fields():
    text = repr(hm.sh("make", label="m"))
    assert text.startswith("Step(cmd='make', parent=Step(cmd=None")
    assert "label='m'" in text and "key_override=None" in text


def test_steps_pickle():
    step = hm.sh("make", label="m", cache=hm.forever(env_keys=("A",)))
    assert pickle.loads(pickle.dumps(step)) == step


def test_steps_take_every_field_positionally_and_by_keyword():
    a = Step("x", None, False, False, "l")
    assert a == Step(cmd="x", label="l")


def test_timeout_sets_seconds_on_a_copy():
    step = hm.sh("make")
    bounded = hm.timeout("1h30m", step)
    assert bounded.timeout_seconds == 5400
    assert step.timeout_seconds is None
    assert bounded.parent is step.parent and bounded.cmd == step.cmd
    assert hm.timeout(45, step).timeout_seconds == 45
    assert hm.timeout(timedelta(minutes=2), step).timeout_seconds == 120
    assert hm.timeout("1m", bounded).timeout_seconds == 60


@pytest.mark.parametrize("bad", ["", "30", "30 s", "1d", "m", "-5s", "0s"])
def test_timeout_refuses_malformed_durations(bad):
    with pytest.raises(ValueError, match="hm: (invalid timeout duration|timeout duration must be positive)"):
        hm.timeout(bad, hm.sh("x"))


@pytest.mark.parametrize("bad", [0, -3])
def test_timeout_must_be_positive(bad):
    with pytest.raises(ValueError, match="hm: timeout duration must be positive — got"):
        hm.timeout(bad, hm.sh("x"))


@pytest.mark.parametrize("bad", [True, 1.5, None])
def test_timeout_types(bad):
    with pytest.raises(TypeError, match="hm: timeout duration must be a str, int, or timedelta"):
        hm.timeout(bad, hm.sh("x"))


def test_timeout_cannot_wrap_a_wait():
    with pytest.raises(ValueError, match="hm: timeout\\(\\) cannot wrap a wait\\(\\) barrier"):
        hm.timeout("30s", hm.wait())


def test_timeout_of_something_else_is_a_type_error():
    with pytest.raises(TypeError, match="timeout\\(\\) wraps a step, got str"):
        hm.timeout("30s", "make")  # type: ignore[arg-type]


def test_group_makes_a_tuple():
    a, b = hm.sh("a"), hm.sh("b")
    assert hm.group([a, b]) == (a, b)


@pytest.mark.parametrize("kw", [{"label": 1}, {"key": ("k",)}, {"image": b"img"}])
def test_text_keywords_must_be_strings(kw):
    (name,) = kw
    with pytest.raises(TypeError, match=f"hm: sh\\(\\) takes {name}= as a string, got"):
        hm.sh("make", **kw)


def test_string_subclasses_are_strings():
    class Label(str):
        pass

    assert hm.sh("make", label=Label("x")).label == "x"


def test_dataclasses_functions_work_on_steps_and_toolchains():
    step = hm.sh("make", label="x")
    assert dataclasses.is_dataclass(step)
    assert [f.name for f in dataclasses.fields(step)][:3] == ["cmd", "parent", "is_wait"]
    changed = dataclasses.replace(step, label="y")
    assert changed.label == "y" and changed.parent is step.parent
    assert dataclasses.asdict(hm.forever(env_keys=("A",))) == {"env_keys": ("A",)}
    go = dataclasses.replace(hm.go(), path="api")
    assert go.build().cmd == "cd api && go build ./..."
    elixir = hm.elixir()
    assert [f.name for f in dataclasses.fields(elixir)] == ["path", "installed", "_plt_step"]
    with pytest.raises(ValueError, match="init=False"):
        dataclasses.replace(elixir, _plt_step=None)


def test_positional_patterns_match_like_a_dataclass():
    match hm.sh("make", label="m"):
        case Step("make", label=label):
            assert label == "m"
        case _:
            pytest.fail("no match")
