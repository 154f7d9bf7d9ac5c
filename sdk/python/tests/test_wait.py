"""hm.wait: depends_on edges between the steps before and after a wait."""

import harmont as hm
from helpers import edges, keys, render, steps_by_key


def test_wait_joins_everything_emitted_before_to_everything_after():
    def joined():
        base = hm.sh("base", key="base")
        a = base.sh("a", key="a")
        b = hm.sh("b", key="b")
        # `c` builds in `a`, already emitted; `d` brings its unemitted parent `d0` along.
        c = a.sh("c", key="c")
        d = hm.sh("d0", key="d0").sh("d", key="d")
        return [a, b, hm.wait(), c, d]

    definition = render(joined)
    assert keys(definition) == ["base", "a", "b", "c", "d0", "d"]
    assert edges(definition, "builds_in") == {("base", "a"), ("a", "c"), ("d0", "d")}
    assert edges(definition, "depends_on") == {
        (before, after) for before in ("base", "a", "b") for after in ("c", "d0", "d")
    }


def test_each_wait_joins_only_to_the_previous_wait():
    def stages():
        return [hm.sh("x", key="x"), hm.wait(), hm.sh("y", key="y"), hm.wait(), hm.sh("z", key="z")]

    assert edges(render(stages), "depends_on") == {("x", "y"), ("y", "z")}


def test_two_waits_in_a_row_still_join():
    # An empty stage between two waits used to cut the join: `z` ran without waiting for `x`.
    def doubled():
        return [hm.sh("x", key="x"), hm.wait(), hm.wait(), hm.sh("z", key="z")]

    assert edges(render(doubled), "depends_on") == {("x", "z")}


def test_waits_at_the_edges_add_nothing():
    def leading():
        return [hm.wait(), hm.sh("x", key="x"), hm.sh("y", key="y"), hm.wait()]

    definition = render(leading)
    assert keys(definition) == ["x", "y"]
    assert definition["edges"] == []


def test_waits_inside_nested_lists():
    def nested():
        return [[hm.sh("x", key="x"), [hm.wait()]], (hm.sh("y", key="y"),)]

    assert edges(render(nested), "depends_on") == {("x", "y")}


def test_continue_on_failure_marks_the_later_steps():
    def lenient():
        later = hm.sh("notify-root", key="notify-root").sh("notify", key="notify")
        return [hm.sh("test", key="test"), hm.wait(continue_on_failure=True), later, hm.wait(), hm.sh("end", key="end")]

    definition = render(lenient)
    steps = steps_by_key(definition)
    assert steps["notify"] == {"key": "notify", "cmd": "notify", "continue_on_failure": True}
    assert steps["notify-root"]["continue_on_failure"] is True
    assert "continue_on_failure" not in steps["test"]
    assert "continue_on_failure" not in steps["end"]
    assert edges(definition, "depends_on") == {
        ("test", "notify-root"),
        ("test", "notify"),
        ("notify-root", "end"),
        ("notify", "end"),
    }


def test_wait_defaults_to_stopping_on_failure():
    assert hm.wait() == hm.Wait(continue_on_failure=False)
    assert hm.wait(continue_on_failure=True).continue_on_failure is True
