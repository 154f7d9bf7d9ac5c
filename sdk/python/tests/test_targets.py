"""@hm.target, hm.Target[T] and hm.BaseImage injection."""

from typing import Annotated

import harmont as hm
from harmont._pipeline import render_all
from helpers import nodes_by_key, parents, render


def test_target_is_injected_and_computed_once_per_render():
    calls = []

    @hm.target
    def toolchain() -> hm.Step:
        calls.append("toolchain")
        return hm.sh("install", key="install", cache=hm.forever())

    @hm.pipeline
    def build(toolchain: hm.Target[hm.Step]):
        return toolchain.sh("make", key="make")

    @hm.pipeline
    def test(toolchain: hm.Target[hm.Step]):
        return toolchain.sh("make test", key="test")

    envelope = render_all()
    assert calls == ["toolchain"]
    first, second = (p["definition"] for p in envelope["pipelines"])
    install = {
        "step": {"key": "install", "cmd": "install", "image": "ubuntu:24.04", "cache": {"policy": "forever"}},
        "env": {"DEBIAN_FRONTEND": "noninteractive", "TERM": "dumb"},
    }
    assert first["nodes"][0] == install == second["nodes"][0]
    assert parents(first) == {"make": "install"}
    assert parents(second) == {"test": "install"}

    render_all()
    assert calls == ["toolchain", "toolchain"]


def test_targets_depend_on_targets():
    calls = []

    @hm.target
    def base() -> hm.Step:
        calls.append("base")
        return hm.sh("apt-get update", key="base")

    @hm.target(name="tools")
    def make_tools(base: hm.Target[hm.Step]) -> hm.Step:
        calls.append("tools")
        return base.sh("install tools", key="tools")

    @hm.target
    def version() -> str:
        return "1.2.3"

    def ci(tools: hm.Target[hm.Step], base: hm.Target[hm.Step], version: hm.Target[str]):
        return [tools.sh(f"release {version}", key="release"), base.sh("lint", key="lint")]

    definition = render(ci)
    assert calls == ["base", "tools"]
    assert parents(definition) == {"tools": "base", "release": "tools", "lint": "base"}
    assert nodes_by_key(definition)["release"]["step"]["cmd"] == "release 1.2.3"


def test_base_image_injects_a_scratch_root():
    @hm.target
    def toolchain(root: Annotated[hm.Step, hm.BaseImage("rust:1.83")]) -> hm.Step:
        return root.sh("rustup component add clippy", key="clippy-install")

    def ci(root: Annotated[hm.Step, hm.BaseImage("node:22")], toolchain: hm.Target[hm.Step]):
        return [root.sh("npm ci", key="npm"), toolchain.sh("cargo clippy", key="clippy")]

    definition = render(ci)
    nodes = nodes_by_key(definition)
    assert nodes["npm"]["step"] == {"key": "npm", "cmd": "npm ci", "image": "node:22"}
    assert nodes["clippy-install"]["step"]["image"] == "rust:1.83"
    assert "image" not in nodes["clippy"]["step"]
    assert parents(definition) == {"clippy": "clippy-install"}


def test_parameters_with_defaults_are_left_alone():
    def ci(suffix: str = "!"):
        return hm.sh(f"echo hi{suffix}", key="echo")

    assert render(ci)["nodes"][0]["step"]["cmd"] == "echo hi!"
