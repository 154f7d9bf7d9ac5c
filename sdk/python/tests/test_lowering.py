"""The factory ``hm.pipeline([leaves])``: the IR and its graph."""

import pytest
from helpers import edges, envs, keys, parents, steps

import harmont as hm
from harmont._pipeline import DEFAULT_IMAGE, _lower_to_graph
from harmont._step import scratch


def test_the_ir_shape():
    ir = hm.pipeline([hm.sh("echo hi", label="hello")])
    assert ir == {
        "version": "0",
        "graph": {
            "nodes": [
                {
                    "step": {"key": "hello", "cmd": "echo hi", "label": "hello", "image": DEFAULT_IMAGE},
                    "env": {"DEBIAN_FRONTEND": "noninteractive", "TERM": "dumb"},
                }
            ],
            "node_holes": [],
            "edge_property": "directed",
            "edges": [],
        },
    }
    assert DEFAULT_IMAGE == "ubuntu:24.04"


def test_a_chain_is_emitted_parents_first_with_builds_in_edges():
    c = hm.sh("a", label="a").sh("b", label="b").sh("c", label="c")
    ir = hm.pipeline([c])
    assert keys(ir) == ["a", "b", "c"]
    assert edges(ir, "builds_in") == [("a", "b"), ("b", "c")]


def test_only_roots_get_the_default_image():
    root = hm.sh("p", label="p")
    ir = hm.pipeline([root.sh("c", label="c"), hm.sh("q", label="q", image="alpine:3")])
    s = steps(ir)
    assert s["p"]["image"] == "ubuntu:24.04"
    assert "image" not in s["c"]
    assert s["q"]["image"] == "alpine:3"
    assert "default_image" not in ir


def test_forks_are_not_nodes_and_branches_share_the_parent():
    base = hm.sh("install", label="install")
    a = base.fork(label="a").sh("test-a", label="test-a")
    b = base.fork(label="b").sh("test-b", label="test-b")
    ir = hm.pipeline([a, b])
    assert keys(ir) == ["install", "test-a", "test-b"]
    assert parents(ir) == {"test-a": "install", "test-b": "install"}


def test_shared_ancestors_are_emitted_once():
    base = hm.sh("install", label="install")
    ir = hm.pipeline([base.sh("a", label="a"), base.sh("b", label="b"), base])
    assert keys(ir) == ["install", "a", "b"]


def test_order_is_leaf_by_leaf_each_chain_from_its_root():
    x = hm.sh("x1", label="x1").sh("x2", label="x2")
    y = hm.sh("y1", label="y1")
    ir = hm.pipeline([y, x, x.sh("x3", label="x3")])
    assert keys(ir) == ["y1", "x1", "x2", "x3"]


def test_a_wait_orders_every_later_step_after_every_earlier_one():
    a, b = hm.sh("a", label="a"), hm.sh("b", label="b")
    c = hm.sh("c", label="c")
    d = c.sh("d", label="d")
    ir = hm.pipeline([a, b, hm.wait(), d])
    assert edges(ir, "depends_on") == [("a", "c"), ("b", "c"), ("a", "d"), ("b", "d")]
    assert edges(ir, "builds_in") == [("c", "d")]
    # Harmont's readers ignore our addition; without continue_on_failure it is absent.
    assert all("continue_on_failure" not in s for s in steps(ir).values())


def test_a_wait_counts_only_the_steps_since_the_previous_wait():
    a, b, c = hm.sh("a", label="a"), hm.sh("b", label="b"), hm.sh("c", label="c")
    ir = hm.pipeline([a, hm.wait(), b, hm.wait(), c])
    assert edges(ir, "depends_on") == [("a", "b"), ("b", "c")]


def test_a_leading_wait_adds_nothing():
    ir = hm.pipeline([hm.wait(continue_on_failure=True), hm.sh("a", label="a")])
    assert edges(ir, "depends_on") == []
    assert "continue_on_failure" not in steps(ir)["a"]


def test_continue_on_failure_marks_the_steps_after_that_wait():
    a = hm.sh("a", label="a")
    b = hm.sh("b", label="b")
    c = hm.sh("c", label="c")
    ir = hm.pipeline([a, hm.wait(continue_on_failure=True), b, b.sh("b2", label="b2"), hm.wait(), c])
    s = steps(ir)
    assert s["b"]["continue_on_failure"] is True
    assert s["b2"]["continue_on_failure"] is True
    assert "continue_on_failure" not in s["a"]
    assert "continue_on_failure" not in s["c"]
    assert edges(ir, "depends_on") == [("a", "b"), ("a", "b2"), ("b", "c"), ("b2", "c")]


def test_env_layers_defaults_then_pipeline_then_step():
    step = hm.sh("x", label="x", env={"B": "step", "TERM": "xterm"})
    ir = hm.pipeline([step], env={"A": "pipe", "B": "pipe"})
    env = envs(ir)["x"]
    assert env == {"DEBIAN_FRONTEND": "noninteractive", "TERM": "xterm", "A": "pipe", "B": "step"}
    assert list(env) == ["DEBIAN_FRONTEND", "TERM", "A", "B"]


def test_optional_fields_are_left_out_and_set_ones_kept_in_order():
    bare = _lower_to_graph([scratch().sh("make")])["nodes"][0]["step"]
    assert set(bare) == {"key", "cmd", "image"}
    full = hm.timeout(
        "10s",
        hm.sh("make", label="m", cache=hm.forever(), image="img", key="k"),
    )
    step = _lower_to_graph([full.sh("child", runner="vm", runner_args={"a": 1})])["nodes"]
    assert list(step[0]["step"]) == ["key", "cmd", "label", "cache", "timeout_seconds", "image"]
    assert step[1]["step"]["runner"] == "vm" and step[1]["step"]["runner_args"] == {"a": 1}


def test_pipeline_timeout():
    ir = hm.pipeline([hm.sh("x")], timeout="20m")
    assert list(ir) == ["version", "timeout_seconds", "graph"]
    assert ir["timeout_seconds"] == 1200
    with pytest.raises(ValueError, match="hm: invalid timeout duration '1d'"):
        hm.pipeline([hm.sh("x")], timeout="1d")


def test_nested_lists_of_leaves_are_flattened():
    a, b, c = hm.sh("a", label="a"), hm.sh("b", label="b"), hm.sh("c", label="c")
    ir = hm.pipeline([[a, (b,)], hm.wait(), c])
    assert keys(ir) == ["a", "b", "c"]
    assert edges(ir, "depends_on") == [("a", "c"), ("b", "c")]


def test_a_leaf_that_is_no_step_is_a_type_error():
    with pytest.raises(TypeError, match="cannot use int as a pipeline leaf"):
        hm.pipeline([hm.sh("a"), 3])


def test_no_leaves_is_an_error():
    from harmont._pipeline import pipeline

    with pytest.raises(ValueError, match="pipeline must have at least one leaf"):
        pipeline([])
    with pytest.raises(ValueError, match="at least one leaf"):
        hm.pipeline(())


def test_steps_given_one_by_one_are_refused():
    a, b = hm.sh("a"), hm.sh("b")
    with pytest.raises(TypeError, match="takes a single list of leaves") as one:
        hm.pipeline(a)
    assert "1 positional Step argument\n" in str(one.value)
    with pytest.raises(TypeError, match=r"2 positional Step arguments") as two:
        hm.pipeline(a, b)
    assert "hm.pipeline([step]) or hm.pipeline([a, b])" in str(two.value)


def test_a_parent_key_given_twice_links_to_the_first_step_with_it():
    # As Harmont does: explicit keys are trusted, and edges follow keys.
    first = hm.sh("one", key="dup")
    second = hm.sh("two", key="dup")
    ir = hm.pipeline([first, second.sh("child", label="child")])
    assert graph_edges(ir) == [[0, 2, "builds_in"]]


def graph_edges(ir):
    return ir["graph"]["edges"]
