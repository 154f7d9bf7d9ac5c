"""Steps: hm.sh, step.sh, hm.scratch, step.fork, hm.timeout, env layering, default image and keys."""

from datetime import timedelta

import pytest

import harmont as hm
from harmont import _registry
from harmont._pipeline import render_all
from helpers import derived_key, edges, keys, parents, render, steps_by_key

BASE_ENV = {"DEBIAN_FRONTEND": "noninteractive", "TERM": "dumb"}


def test_sh_makes_a_root_with_every_option():
    def build():
        return hm.sh(
            "make",
            cwd="app",
            label="Build",
            cache=hm.forever(),
            env={"CC": "clang"},
            image="debian:12",
            key="make",
        )

    assert render(build) == {
        "version": "0",
        "nodes": [
            {
                "step": {
                    "key": "make",
                    "cmd": "cd app && make",
                    "label": "Build",
                    "image": "debian:12",
                    "env": {"CC": "clang"},
                    "cache": {"policy": "forever"},
                },
                "env": {**BASE_ENV, "CC": "clang"},
            }
        ],
        "node_holes": [],
        "edge_property": "directed",
        "edges": [],
    }


def test_sh_with_only_a_command_gets_the_default_image_and_no_cache():
    def bare():
        return hm.sh("true")

    (node,) = render(bare)["nodes"]
    assert node == {
        "step": {"key": derived_key("", "true", 0), "cmd": "true", "image": hm.DEFAULT_IMAGE},
        "env": BASE_ENV,
    }
    assert hm.DEFAULT_IMAGE == "ubuntu:24.04"


def test_step_sh_builds_in_its_parent_with_runner_options():
    def chain():
        root = hm.sh("apt-get update", key="root")
        return root.sh(
            "make",
            cwd="src",
            label="Make",
            cache=hm.on_change("Makefile"),
            env={"J": "4"},
            key="make",
            runner="vm",
            runner_args={"cpus": 2},
        )

    definition = render(chain)
    assert definition["nodes"] == [
        {"step": {"key": "root", "cmd": "apt-get update", "image": "ubuntu:24.04"}, "env": BASE_ENV},
        {
            "step": {
                "key": "make",
                "cmd": "cd src && make",
                "label": "Make",
                "env": {"J": "4"},
                "cache": {"policy": "on_change", "paths": ["Makefile"]},
                "runner": "vm",
                "runner_args": {"cpus": 2},
            },
            "env": {**BASE_ENV, "J": "4"},
        },
    ]
    assert definition["edges"] == [[0, 1, "builds_in"]]


def test_child_image_is_carried_only_when_given():
    def images():
        root = hm.sh("root", key="root")
        return [root.sh("plain", key="plain"), root.sh("other", key="other", image="alpine:3")]

    steps = steps_by_key(render(images))
    assert steps["root"]["image"] == "ubuntu:24.04"
    assert "image" not in steps["plain"]
    assert steps["other"]["image"] == "alpine:3"


def test_steps_are_immutable_and_two_sh_calls_branch():
    def branches():
        root = hm.sh("setup", key="root")
        first = root.sh("a", key="a")
        second = root.sh("b", key="b")
        assert first is not root and second is not first
        assert root.cmd == "setup" and root.parent is None
        return [first, second]

    definition = render(branches)
    assert keys(definition) == ["root", "a", "b"]
    assert parents(definition) == {"a": "root", "b": "root"}


def test_scratch_gives_its_image_to_the_first_sh():
    def from_scratch():
        return hm.scratch("rust:1.83").sh("cargo build", key="build", label="Build")

    definition = render(from_scratch)
    assert definition["nodes"] == [
        {"step": {"key": "build", "cmd": "cargo build", "label": "Build", "image": "rust:1.83"}, "env": BASE_ENV}
    ]
    assert definition["edges"] == []


def test_scratch_image_can_be_overridden_or_defaulted():
    def images():
        return [
            hm.scratch("rust:1.83").sh("a", key="a", image="alpine:3"),
            hm.scratch().sh("b", key="b"),
        ]

    steps = steps_by_key(render(images))
    assert steps["a"]["image"] == "alpine:3"
    assert steps["b"]["image"] == "ubuntu:24.04"


def test_scratch_roots_with_one_command_get_distinct_keys():
    def twice():
        root = hm.scratch("debian:12")
        return [root.sh("make"), root.sh("make")]

    definition = render(twice)
    assert keys(definition) == [derived_key("", "make", 0), derived_key("", "make", 1)]
    assert definition["edges"] == []


def test_fork_branches_two_children_off_one_parent():
    def forked():
        deps = hm.sh("fetch", key="deps")
        fork = deps.fork(label="checks")
        assert isinstance(fork, hm.Fork)
        return [fork.sh("lint", key="lint"), fork.fork().sh("test", key="test")]

    definition = render(forked)
    assert keys(definition) == ["deps", "lint", "test"]
    assert definition["edges"] == [[0, 1, "builds_in"], [0, 2, "builds_in"]]


def test_a_returned_fork_emits_its_step():
    def fork_only():
        return hm.sh("fetch", key="deps").fork()

    assert keys(render(fork_only)) == ["deps"]


@pytest.mark.parametrize(
    ("duration", "expected"),
    [
        ("30s", 30),
        ("5m", 300),
        ("1h30m", 5400),
        ("2d", 172800),
        ("90", 90),
        (45, 45),
        (timedelta(minutes=2), 120),
    ],
)
def test_timeout_sets_timeout_seconds(duration, expected):
    def limited():
        return hm.timeout(duration, hm.sh("sleep 1", key="sleep"))

    (node,) = render(limited)["nodes"]
    assert node["step"] == {"key": "sleep", "cmd": "sleep 1", "image": "ubuntu:24.04", "timeout_seconds": expected}


def test_timeout_returns_a_new_step_and_applies_to_forks():
    def limited():
        root = hm.sh("root", key="root")
        child = root.sh("child", key="child")
        wrapped = hm.timeout("1m", child.fork())
        assert child.timeout_seconds is None
        return wrapped

    definition = render(limited)
    steps = steps_by_key(definition)
    assert steps["child"]["timeout_seconds"] == 60
    assert "timeout_seconds" not in steps["root"]
    assert parents(definition) == {"child": "root"}


def test_env_layers_base_then_pipeline_then_step():
    def layered():
        return [
            hm.sh("a", key="a", env={"B": "step", "C": "step"}),
            hm.sh("b", key="b", env={"TERM": "xterm"}),
            hm.sh("c", key="c"),
        ]

    definition = render(layered, env={"A": "pipe", "B": "pipe", "DEBIAN_FRONTEND": "readline"})
    by_key = {node["step"]["key"]: node for node in definition["nodes"]}
    assert by_key["a"]["env"] == {"DEBIAN_FRONTEND": "readline", "TERM": "dumb", "A": "pipe", "B": "step", "C": "step"}
    assert by_key["a"]["step"]["env"] == {"B": "step", "C": "step"}
    assert by_key["b"]["env"] == {"DEBIAN_FRONTEND": "readline", "TERM": "xterm", "A": "pipe", "B": "pipe"}
    assert by_key["c"]["env"] == {"DEBIAN_FRONTEND": "readline", "TERM": "dumb", "A": "pipe", "B": "pipe"}
    assert "env" not in by_key["c"]["step"]


def test_env_values_become_strings():
    def numbers():
        return hm.sh("a", key="a", env={"JOBS": 4})

    (node,) = render(numbers)["nodes"]
    assert node["step"]["env"] == {"JOBS": "4"}


class TestKeys:
    def test_explicit_key_wins_over_label(self):
        def explicit():
            return hm.sh("a", key="given", label="Some Label")

        assert keys(render(explicit)) == ["given"]

    @pytest.mark.parametrize(
        ("label", "key"),
        [
            ("Build", "build"),
            ("Build :rocket: App!!", "build-app"),
            (":package: cargo   test --all", "cargo-test-all"),
            ("  Unit/Integration Tests  ", "unit-integration-tests"),
            ("v1.2 :white_check_mark:", "v1-2"),
        ],
    )
    def test_unique_label_is_slugified(self, label, key):
        def labelled():
            return hm.sh("a", label=label)

        assert keys(render(labelled)) == [key]

    def test_shared_label_falls_back_to_hashes(self):
        def shared():
            root = hm.sh("root", label="Same")
            return [root.sh("a", label="Same"), root.sh("b", label="same!")]

        root_key = derived_key("", "root", 0)
        assert keys(render(shared)) == [root_key, derived_key(root_key, "a", 0), derived_key(root_key, "b", 0)]

    def test_label_taken_by_an_explicit_key_falls_back_to_a_hash(self):
        def taken():
            return [hm.sh("a", key="build"), hm.sh("b", label="Build")]

        assert keys(render(taken)) == ["build", derived_key("", "b", 0)]

    def test_label_with_only_shortcodes_falls_back_to_a_hash(self):
        def emoji():
            return hm.sh("a", label=":rocket:")

        assert keys(render(emoji)) == [derived_key("", "a", 0)]

    def test_hash_covers_parent_key_command_and_position(self):
        def hashed():
            root = hm.sh("make", key="root")
            return [root.sh("make"), root.sh("make"), hm.sh("make")]

        definition = render(hashed)
        assert keys(definition) == [
            "root",
            derived_key("root", "make", 0),
            derived_key("root", "make", 1),
            derived_key("", "make", 1),
        ]
        assert all(len(k) == 12 and set(k) <= set("0123456789abcdef") for k in keys(definition)[1:])

    def test_hashes_are_the_same_across_renders(self):
        def define():
            @hm.pipeline
            def ci():
                root = hm.sh("apt-get update")
                return [root.sh("make"), root.sh("make test"), hm.sh("apt-get update")]

            return render_all()

        first = define()
        _registry.reset()
        assert define() == first

    def test_parent_key_of_a_hash_is_the_final_key(self):
        def labelled_parent():
            return hm.sh("root", label="Root Step").sh("child")

        definition = render(labelled_parent)
        assert keys(definition) == ["root-step", derived_key("root-step", "child", 0)]
        assert edges(definition, "builds_in") == {("root-step", derived_key("root-step", "child", 0))}
