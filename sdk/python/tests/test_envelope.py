"""The envelope of many pipelines at once is structurally sound."""

import copy
from typing import Annotated

import pytest

import harmont as hm
from harmont._pipeline import render_all
from helpers import check_envelope


def define_everything():
    @hm.target
    def toolchain(root: Annotated[hm.Step, hm.BaseImage("rust:1.83")]) -> hm.Step:
        return root.sh("rustup component add clippy", cache=hm.forever())

    @hm.pipeline(triggers=[hm.push(branch="main"), hm.pr()], env={"CI": "1"}, timeout="30m")
    def ci(toolchain: hm.Target[hm.Step]):
        deps = toolchain.sh("cargo fetch", cache=hm.on_change("Cargo.lock"))
        checks = deps.fork()
        return [
            checks.sh("cargo clippy", label=":mag: Clippy"),
            hm.timeout("10m", checks.sh("cargo test", label="Test")),
            hm.wait(continue_on_failure=True),
            hm.sh("notify", label="Test"),
        ]

    @hm.pipeline
    def presets():
        return [hm.go.project(), hm.python.project("py"), hm.wait(), hm.sh("echo done")]

    @hm.pipeline("nightly", triggers=[hm.push(tag="v*")])
    def nightly(toolchain: hm.Target[hm.Step]):
        return [toolchain.sh("cargo build"), toolchain.sh("cargo build"), hm.wait(), hm.wait(), toolchain]


def test_envelope_of_many_pipelines_is_well_formed():
    define_everything()
    envelope = render_all()
    assert [p["slug"] for p in envelope["pipelines"]] == ["ci", "presets", "nightly"]
    check_envelope(envelope)


@pytest.mark.parametrize(
    "damage",
    [
        lambda d: d["edges"].append([0, len(d["nodes"]), "depends_on"]),
        lambda d: d["nodes"][1]["step"].update(key=d["nodes"][0]["step"]["key"]),
        lambda d: d["nodes"][0]["step"].pop("cmd"),
        lambda d: d["nodes"][0]["step"].pop("key"),
        lambda d: d["nodes"][0].pop("env"),
    ],
    ids=["edge-out-of-range", "duplicate-key", "no-cmd", "no-key", "no-env"],
)
def test_the_check_catches_damage(damage):
    define_everything()
    envelope = render_all()
    check_envelope(envelope)
    broken = copy.deepcopy(envelope)
    damage(broken["pipelines"][0]["definition"])
    with pytest.raises((AssertionError, KeyError)):
        check_envelope(broken)
