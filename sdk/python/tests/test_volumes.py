"""Cache volumes (an addition of hm): ``hm.volume``, ``volumes=`` on steps and
pipelines, and their IR, written only when given."""

import json

import pytest

import harmont as hm
from harmont._registry import REGISTRATIONS

from helpers import render_one, steps


def test_volume_is_a_name_and_a_sharing():
    assert hm.volume("cargo-registry") == hm.Volume("cargo-registry", "shared")
    locked = hm.volume("cargo-target", sharing="locked")
    assert (locked.name, locked.sharing) == ("cargo-target", "locked")
    assert hm.volume("x", "private").sharing == "private"
    assert locked == hm.volume("cargo-target", "locked") and hash(locked) == hash(hm.Volume("cargo-target", "locked"))


def test_volumes_render_short_when_shared_else_as_an_object():
    assert hm.volume("npm").to_ir() == "npm"
    assert hm.volume("npm", sharing="shared").to_ir() == "npm"
    assert hm.volume("t", sharing="locked").to_ir() == {"name": "t", "sharing": "locked"}
    assert hm.volume("t", sharing="private").to_ir() == {"name": "t", "sharing": "private"}


def test_an_unknown_sharing_is_refused_naming_the_allowed_values():
    with pytest.raises(ValueError, match="invalid volume sharing 'exclusive'") as err:
        hm.volume("t", sharing="exclusive")
    assert '"shared" (the default), "locked" or "private"' in str(err.value)
    with pytest.raises(ValueError, match="invalid volume sharing 'Locked'"):
        hm.volume("t", "Locked")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="invalid volume sharing 'x'"):
        hm.Volume("t", "x")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="sharing must be a string, got NoneType"):
        hm.volume("t", sharing=None)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="the name must be a string, got int"):
        hm.volume(7)  # type: ignore[arg-type]


def test_every_sh_takes_volumes():
    vols = {"/root/.cargo/registry": "cargo-registry", "target": hm.volume("cargo-target", sharing="locked")}
    assert hm.sh("cargo build", volumes=vols).volumes == vols
    assert hm.scratch().sh("cargo build", volumes=vols).volumes == vols
    assert hm.sh("a").sh("cargo build", volumes=vols, runner="vm", runner_args={"cpus": 2}).volumes == vols
    assert hm.sh("a").volumes is None


def test_a_steps_volumes_are_a_copy():
    vols = {"target": "cargo-target"}
    step = hm.sh("cargo build", volumes=vols)
    vols["other"] = "x"
    assert step.volumes == {"target": "cargo-target"}


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (["target"], "volumes must be a dict of mount paths to volume names, got list"),
        ("cargo-target", "volumes must be a dict of mount paths to volume names, got str"),
        ({1: "x"}, "a volume's mount path must be a string, got int"),
        ({"target": 3}, "the volume at 'target' must be a name or hm.volume"),
        ({"target": {"name": "t", "sharing": "locked"}}, "the volume at 'target' must be a name or hm.volume"),
    ],
)
def test_volumes_of_the_wrong_type_are_refused_where_they_are_written(bad, message):
    with pytest.raises(TypeError, match=message):
        hm.sh("x", volumes=bad)
    with pytest.raises(TypeError, match=message):
        hm.pipeline([hm.sh("x")], volumes=bad)
    with pytest.raises(TypeError, match=message):
        hm.pipeline("ci", volumes=bad)
    assert REGISTRATIONS == []


def test_a_steps_volumes_are_written_last_only_when_given():
    root = hm.sh("apt-get install -y gcc", label="base")
    build = root.sh(
        "cargo build",
        label="build",
        volumes={"/root/.cargo/registry": "cargo-registry", "target": hm.volume("cargo-target", sharing="locked")},
    )
    test = root.sh("cargo test", label="test", volumes={})
    ir = hm.pipeline([build, hm.wait(continue_on_failure=True), test])
    by_key = steps(ir)
    assert "volumes" not in by_key["base"]
    assert by_key["build"]["volumes"] == {
        "/root/.cargo/registry": "cargo-registry",
        "target": {"name": "cargo-target", "sharing": "locked"},
    }
    assert list(by_key["test"])[-2:] == ["continue_on_failure", "volumes"]
    assert by_key["test"]["volumes"] == {}
    assert "volumes" not in ir


def test_a_pipelines_volumes_are_written_after_the_network_only_when_given():
    leaves = [hm.sh("a", label="a")]
    ir = hm.pipeline(leaves, timeout=60, network="none", volumes={"/cache": hm.volume("c", sharing="private")})
    assert list(ir) == ["version", "timeout_seconds", "network", "volumes", "graph"]
    assert ir["volumes"] == {"/cache": {"name": "c", "sharing": "private"}}
    assert list(hm.pipeline(leaves, volumes={"/cache": "c"})) == ["version", "volumes", "graph"]

    hm.pipeline("ci", volumes={"/root/.npm": "npm"})(lambda: leaves)
    (reg,) = REGISTRATIONS
    assert reg.volumes == {"/root/.npm": "npm"}
    assert render_one()["definition"] == hm.pipeline(leaves, volumes={"/root/.npm": "npm"})


def test_harmonts_pipelines_render_no_volumes():
    root = hm.sh("make", label="make")

    @hm.pipeline("ci", env={"A": "1"}, timeout="5m")
    def ci():
        return [root.sh("make test", runner="vm", runner_args={"cpus": 2}), hm.wait(), root.fork().sh("make docs")]

    text = hm.dump_registry_json(now=0, env={})
    assert "volumes" not in text
    assert json.loads(text)["pipelines"][0]["definition"] == hm.pipeline(
        [root.sh("make test", runner="vm", runner_args={"cpus": 2}), hm.wait(), root.fork().sh("make docs")],
        env={"A": "1"},
        timeout="5m",
    )


def test_the_registry_json_carries_volumes():
    @hm.pipeline("ci", volumes={"/root/.cargo/registry": "cargo-registry"})
    def ci():
        return hm.sh("cargo build", volumes={"target": hm.volume("cargo-target", sharing="locked")})

    (pipeline,) = json.loads(hm.dump_registry_json(now=0, env={}))["pipelines"]
    assert pipeline["definition"]["volumes"] == {"/root/.cargo/registry": "cargo-registry"}
    (node,) = pipeline["definition"]["graph"]["nodes"]
    assert node["step"]["volumes"] == {"target": {"name": "cargo-target", "sharing": "locked"}}


def test_volumes_are_exported_and_typed():
    assert "volume" in hm.__all__ and "Volume" in hm.__all__
    assert hm.volume.__doc__ and "sharing" in hm.volume.__doc__
