"""@hm.pipeline: slugs, options, triggers, return forms."""

from datetime import timedelta

import pytest

import harmont as hm
from harmont._pipeline import render_all
from helpers import check_envelope, keys, parents, render, render_entry


def one_step():
    return hm.sh("make", key="make")


def test_entry_with_every_option():
    def release():
        return hm.sh("make", key="make")

    entry = render_entry(
        release,
        slug="ship-it",
        name="Ship it",
        triggers=[hm.push(branch="main"), hm.pr()],
        allow_manual=False,
        env={"MODE": "release"},
        timeout="1h",
    )
    assert entry == {
        "slug": "ship-it",
        "name": "Ship it",
        "allow_manual": False,
        "triggers": [
            {"type": "push", "branches": ["main"]},
            {"type": "pull_request", "types": ["opened", "synchronize", "reopened"]},
        ],
        "definition": {
            "version": "0",
            "nodes": [
                {
                    "step": {"key": "make", "cmd": "make", "image": "ubuntu:24.04"},
                    "env": {"DEBIAN_FRONTEND": "noninteractive", "TERM": "dumb", "MODE": "release"},
                }
            ],
            "node_holes": [],
            "edge_property": "directed",
            "edges": [],
            "timeout_seconds": 3600,
        },
    }


def test_defaults():
    def my_ci_pipeline():
        return hm.sh("make", key="make")

    entry = render_entry(my_ci_pipeline)
    assert {k: v for k, v in entry.items() if k != "definition"} == {
        "slug": "my-ci-pipeline",
        "name": "my-ci-pipeline",
        "allow_manual": True,
        "triggers": [],
    }
    assert "timeout_seconds" not in entry["definition"]


@pytest.mark.parametrize("timeout", [3600, "60m", timedelta(hours=1)])
def test_pipeline_timeout_forms(timeout):
    assert render(one_step, timeout=timeout)["timeout_seconds"] == 3600


def test_decorator_forms():
    @hm.pipeline
    def bare():
        return hm.sh("a", key="a")

    @hm.pipeline()
    def called():
        return hm.sh("b", key="b")

    @hm.pipeline("by-position")
    def positional():
        return hm.sh("c", key="c")

    @hm.pipeline(slug="by-keyword", name="Keyword")
    def keyword():
        return hm.sh("d", key="d")

    assert bare.__name__ == "bare"  # the decorator hands the function back
    envelope = render_all()
    assert [(p["slug"], p["name"]) for p in envelope["pipelines"]] == [
        ("bare", "bare"),
        ("called", "called"),
        ("by-position", "by-position"),
        ("by-keyword", "Keyword"),
    ]
    check_envelope(envelope)


@pytest.mark.parametrize(
    ("trigger", "ir"),
    [
        (hm.push(branch="main"), {"type": "push", "branches": ["main"]}),
        (hm.push("main"), {"type": "push", "branches": ["main"]}),
        (hm.push(branch=["main", "release/*"]), {"type": "push", "branches": ["main", "release/*"]}),
        (hm.push(tag="v*"), {"type": "push", "tags": ["v*"]}),
        (hm.push(tag=["v*", "nightly-*"]), {"type": "push", "tags": ["v*", "nightly-*"]}),
        (hm.pull_request(), {"type": "pull_request", "types": ["opened", "synchronize", "reopened"]}),
        (
            hm.pull_request(branches="main"),
            {"type": "pull_request", "branches": ["main"], "types": ["opened", "synchronize", "reopened"]},
        ),
        (
            hm.pr(branches=["main", "dev"], types=["opened"]),
            {"type": "pull_request", "branches": ["main", "dev"], "types": ["opened"]},
        ),
    ],
    ids=["branch", "branch-positional", "branches", "tag", "tags", "pr", "pr-branch", "pr-alias"],
)
def test_trigger_ir(trigger, ir):
    assert render_entry(one_step, triggers=[trigger])["triggers"] == [ir]


def test_pr_is_pull_request():
    assert hm.pr is hm.pull_request


class TestReturnForms:
    def test_single_step(self):
        def single():
            return hm.sh("a", key="a")

        assert keys(render(single)) == ["a"]

    def test_list(self):
        def listed():
            return [hm.sh("a", key="a"), hm.sh("b", key="b")]

        assert keys(render(listed)) == ["a", "b"]

    def test_tuple(self):
        def tupled():
            return hm.sh("a", key="a"), hm.sh("b", key="b")

        assert keys(render(tupled)) == ["a", "b"]

    def test_nested_lists_flatten_in_order(self):
        def nested():
            return [hm.sh("a", key="a"), [(hm.sh("b", key="b"), [hm.sh("c", key="c")]), hm.sh("d", key="d")]]

        assert keys(render(nested)) == ["a", "b", "c", "d"]

    def test_ancestors_come_before_their_steps_once(self):
        def shared_parent():
            root = hm.sh("root", key="root")
            return [root.sh("a", key="a"), root, root.sh("b", key="b")]

        definition = render(shared_parent)
        assert keys(definition) == ["root", "a", "b"]
        assert parents(definition) == {"a": "root", "b": "root"}

    def test_toolchain_project_contributes_its_defaults(self):
        def project():
            return hm.go.project()

        definition = render(project)
        labels = [node["step"].get("label") for node in definition["nodes"]]
        assert labels == ["apt base", "go 1.23.4", "go mod download", "gofmt", "go vet", "go build", "go test"]

    def test_toolchain_project_in_a_list(self):
        def mixed():
            return [hm.zig.project(), hm.wait(), hm.sh("deploy", key="deploy")]

        definition = render(mixed)
        assert [node["step"].get("label") for node in definition["nodes"]][-4:] == [
            "zig fmt",
            "zig build",
            "zig build test",
            None,
        ]
