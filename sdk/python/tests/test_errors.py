"""Mistakes in a definition raise hm.HarmontError with a message that says what to fix."""

from datetime import timedelta

import pytest

import harmont as hm
from harmont._pipeline import render_all
from helpers import render


def one_step():
    return hm.sh("make", key="make")


@pytest.mark.parametrize("slug", ["Bad_Slug", "1abc", "a" * 65, "", "-lead", "has space", "ünï"])
def test_bad_slug(slug):
    with pytest.raises(hm.HarmontError, match=r"invalid pipeline slug `.*`: it must match \^\[a-z\]\[a-z0-9-\]\{0,63\}\$"):
        hm.pipeline(slug)(one_step)


def test_slug_with_a_trailing_newline_is_refused():
    # `$` also matches before a final newline; hm's own check would reject the slug later.
    with pytest.raises(hm.HarmontError, match="invalid pipeline slug"):
        hm.pipeline("ci\n")(one_step)


def test_bad_slug_from_the_function_name():
    def Upper_Case():
        return hm.sh("make")

    with pytest.raises(hm.HarmontError, match="invalid pipeline slug `Upper-Case`"):
        hm.pipeline(Upper_Case)


@pytest.mark.parametrize("slug", ["a", "a" * 64, "build-2"])
def test_good_slugs(slug):
    assert render(one_step, slug=slug)["nodes"][0]["step"]["key"] == "make"


def test_duplicate_slug():
    hm.pipeline("ci")(one_step)
    with pytest.raises(hm.HarmontError, match=r"duplicate pipeline slug `ci` \(also defined in .*test_errors\.py:\d+\)"):
        hm.pipeline("ci")(one_step)


def test_target_cycle_names_the_cycle():
    @hm.target
    def a(b: hm.Target[hm.Step]) -> hm.Step:
        return b

    @hm.target
    def b(a: hm.Target[hm.Step]) -> hm.Step:
        return a

    @hm.pipeline
    def ci(a: hm.Target[hm.Step]):
        return a

    with pytest.raises(hm.HarmontError, match=r"^target cycle: a -> b -> a$"):
        render_all()


def test_unknown_target():
    @hm.target
    def known() -> hm.Step:
        return hm.sh("x")

    @hm.pipeline
    def ci(missing: hm.Target[hm.Step]):
        return missing

    with pytest.raises(hm.HarmontError, match=r"unknown target `missing` \(targets: known\)"):
        render_all()


def test_duplicate_target_name():
    @hm.target
    def tools() -> hm.Step:
        return hm.sh("x")

    with pytest.raises(hm.HarmontError, match=r"duplicate target `tools` \(also defined at .*test_errors\.py:\d+\)"):

        @hm.target(name="tools")
        def other() -> hm.Step:
            return hm.sh("y")


def test_parameter_that_is_not_injectable():
    def ci(step):
        return step

    with pytest.raises(hm.HarmontError, match=r"pipeline `ci`: parameter `step` is neither `hm.Target\[...\]`"):
        render(ci)


@pytest.mark.parametrize("duration", [0, "0s", -5, timedelta(0), timedelta(seconds=-1)])
def test_timeout_must_be_positive(duration):
    with pytest.raises(hm.HarmontError, match="timeout must be greater than 0"):
        hm.timeout(duration, hm.sh("make"))


@pytest.mark.parametrize("duration", ["soon", "-5s", "5 minutes", "", True, None])
def test_timeout_must_be_a_duration(duration):
    with pytest.raises(hm.HarmontError, match="timeout"):
        hm.timeout(duration, hm.sh("make"))


def test_pipeline_timeout_must_be_positive():
    with pytest.raises(hm.HarmontError, match="pipeline timeout must be greater than 0"):
        hm.pipeline(timeout=0)(one_step)


def test_timeout_of_a_scratch_root():
    with pytest.raises(hm.HarmontError, match="timeout applies to a step"):
        hm.timeout("5m", hm.scratch("alpine"))


@pytest.mark.parametrize("cwd", ["", "   "])
def test_empty_cwd(cwd):
    with pytest.raises(hm.HarmontError, match="cwd must be a non-empty path"):
        hm.sh("make", cwd=cwd)
    with pytest.raises(hm.HarmontError, match="cwd must be a non-empty path"):
        hm.sh("true").sh("make", cwd=cwd)


def test_push_with_both_branch_and_tag():
    with pytest.raises(hm.HarmontError, match="exactly one of branch= or tag="):
        hm.push(branch="main", tag="v*")


def test_push_with_neither_branch_nor_tag():
    with pytest.raises(hm.HarmontError, match="exactly one of branch= or tag="):
        hm.push()


def test_push_with_an_empty_list():
    with pytest.raises(hm.HarmontError, match="branch must be a glob or a list of globs"):
        hm.push(branch=[])


def test_trigger_that_is_not_a_trigger():
    with pytest.raises(hm.HarmontError, match=r"triggers must be hm.push\(...\) or hm.pull_request\(...\)"):
        hm.pipeline(triggers=[{"type": "push"}])(one_step)


def test_on_change_without_paths():
    with pytest.raises(hm.HarmontError, match="on_change needs at least one path"):
        hm.on_change()
    with pytest.raises(hm.HarmontError, match="on_change needs at least one path"):
        hm.on_change([])


def test_other_bad_policies():
    with pytest.raises(hm.HarmontError, match="ttl must be greater than 0"):
        hm.ttl(0)
    with pytest.raises(hm.HarmontError, match="compose needs at least one policy"):
        hm.compose()
    with pytest.raises(hm.HarmontError, match="compose takes cache policies"):
        hm.compose("forever")
    with pytest.raises(hm.HarmontError, match=r"cache must be a policy such as hm.forever\(\)"):
        hm.sh("make", cache="forever")


def test_duplicate_explicit_keys():
    def twice():
        return [hm.sh("a", key="same"), hm.sh("b", key="same")]

    with pytest.raises(hm.HarmontError, match="pipeline `twice`: two steps have the key `same`; give one of them"):
        render(twice)


def test_a_scratch_root_alone():
    def empty():
        return [hm.scratch("alpine")]

    with pytest.raises(hm.HarmontError, match=r"a scratch root runs nothing by itself; call .sh\(...\) on it"):
        render(empty)


def test_a_return_value_that_is_not_a_step():
    def wrong():
        return ["make"]

    with pytest.raises(hm.HarmontError, match="a pipeline returns steps, lists of steps, waits or toolchain projects"):
        render(wrong)


def test_env_that_is_not_a_mapping_of_strings():
    with pytest.raises(hm.HarmontError, match="env value of A must be a string"):
        hm.sh("make", env={"A": None})
    with pytest.raises(hm.HarmontError, match="env must be a mapping"):
        hm.sh("make", env=["A=1"])
