"""Toolchain presets: golden IR per preset, the shape of their chains, and hm.apt_base.

``HM_UPDATE_GOLDEN=1 python3 -m pytest tests/test_toolchains.py`` rewrites the golden files after an
intended change to a preset; read the diff before keeping it."""

import json
import os
from pathlib import Path

import pytest

import harmont as hm
from harmont._pipeline import render_all
from harmont.toolchains._base import SYSTEM_PATH
from helpers import check_envelope, keys, nodes_by_key, parents, render

GOLDEN_DIR = Path(__file__).parent / "golden"
UPDATE = os.environ.get("HM_UPDATE_GOLDEN") == "1"


def rust_app():
    project = hm.rust.toolchain("1.83.0").project("crates/app")
    project = project.setup("cargo install cargo-nextest --locked", label="nextest", cache=hm.forever())
    return [project, project.doc()]


def js_node_pnpm():
    project = hm.js.project(package_manager="pnpm")
    return [project.install(), project.run("lint"), project.run("test")]


def cmake_all():
    project = hm.cmake.project()
    return [project.build(), project.test(), project.fmt(), project.lint(), project.package()]


def elixir_all():
    project = hm.elixir.project()
    return [project.compile(), project.test(), project.format(), project.credo(), project.dialyzer()]


#: Golden name -> the pipeline's return value.
PRESETS = {
    "rust": lambda: hm.rust.project(),
    "rust_app": rust_app,
    "go": lambda: hm.go.project(),
    "python": lambda: hm.python.project(),
    "py_uv": lambda: hm.py.uv.project(),
    "js_node_npm": lambda: hm.js.project(),
    "js_node_pnpm": js_node_pnpm,
    "ts_bun": lambda: hm.ts.project(runtime="bun"),
    "js_deno": lambda: hm.js.project(runtime="deno"),
    "zig": lambda: hm.zig.project(),
    "cmake": cmake_all,
    "elixir": elixir_all,
}

#: Golden name -> the files the dependency step is cached on.
LOCK_FILES = {
    "rust": ["Cargo.lock"],
    "rust_app": ["crates/app/Cargo.lock"],
    "go": ["go.sum"],
    "python": ["requirements.txt", "pyproject.toml"],
    "py_uv": ["uv.lock"],
    "js_node_npm": ["package-lock.json"],
    "js_node_pnpm": ["pnpm-lock.yaml"],
    "ts_bun": ["bun.lock", "bun.lockb"],
    "js_deno": ["deno.lock"],
    "zig": ["build.zig.zon"],
    "cmake": ["CMakeLists.txt", "**/CMakeLists.txt", "**/*.cmake"],
    "elixir": ["mix.lock"],
}

#: Golden name -> labels of the action steps, in order.
ACTIONS = {
    "rust": ["cargo fmt", "cargo clippy", "cargo build", "cargo test", "cargo doctest"],
    "rust_app": ["cargo fmt", "cargo clippy", "cargo build", "cargo test", "cargo doctest", "cargo doc"],
    "go": ["gofmt", "go vet", "go build", "go test"],
    "python": ["ruff check", "ruff format", "mypy", "pytest"],
    "py_uv": ["ruff check", "ruff format", "mypy", "pytest"],
    "js_node_npm": ["npm test"],
    "js_node_pnpm": ["pnpm lint", "pnpm test"],
    "ts_bun": ["bun test"],
    "js_deno": ["deno test"],
    "zig": ["zig fmt", "zig build", "zig build test"],
    "cmake": ["cmake build", "ctest", "clang-format", "clang-tidy", "cpack"],
    "elixir": ["mix compile", "mix test", "mix format", "mix credo", "mix dialyzer"],
}

#: Other configurations, checked for architecture-neutral commands along with the goldens.
VARIANTS = {
    "go_version": lambda: hm.go.toolchain("1.22.10").project("svc"),
    "zig_version": lambda: hm.zig.project(version="0.15.1"),
    "bun_version": lambda: hm.ts.project(runtime="bun", version="1.1.38"),
    "deno_version": lambda: hm.js.project(runtime="deno", version="2.1.4"),
    "node_yarn": lambda: hm.js.project(version="20", package_manager="yarn"),
    "uv_python": lambda: hm.py.uv.project(python="3.13"),
    "elixir_version": lambda: hm.elixir.project(version="1.18.1"),
    "rust_nightly": lambda: hm.rust.project(version="nightly"),
}

ARCHITECTURES = ("x86_64", "amd64", "aarch64", "arm64", "x64", "i686")


def render_preset(name, presets=PRESETS):
    """The envelope of one pipeline, named after the preset, returning it."""
    hm.pipeline(name.replace("_", "-"))(presets[name])
    return render_all()


def golden_text(envelope):
    return json.dumps(envelope, indent=2, sort_keys=True) + "\n"


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_golden(name):
    envelope = render_preset(name)
    path = GOLDEN_DIR / f"{name}.json"
    if UPDATE:
        GOLDEN_DIR.mkdir(exist_ok=True)
        path.write_text(golden_text(envelope))
        return
    assert path.exists(), f"{path} is missing; generate it with HM_UPDATE_GOLDEN=1"
    text = path.read_text()
    assert json.loads(text) == envelope
    assert text == golden_text(envelope)


def test_every_golden_file_has_a_preset():
    assert sorted(p.stem for p in GOLDEN_DIR.glob("*.json")) == sorted(PRESETS)


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_chain_apt_base_install_dependencies_actions(name):
    definition = render_preset(name)["pipelines"][0]["definition"]
    nodes = nodes_by_key(definition)
    parent_of = parents(definition)
    children = {}
    for child, parent in parent_of.items():
        children.setdefault(parent, []).append(child)
    assert not any(kind == "depends_on" for _, _, kind in definition["edges"])

    (apt,) = [key for key in keys(definition) if key not in parent_of]
    apt_step = nodes[apt]["step"]
    assert apt_step["label"] == "apt base"
    assert apt_step["image"] == "ubuntu:24.04"
    assert apt_step["cache"] == {"policy": "ttl", "duration_seconds": 86400}
    assert apt_step["cmd"].startswith("apt-get update && apt-get install -y --no-install-recommends ")

    (install,) = children[apt]
    assert nodes[install]["step"]["cache"] == {"policy": "forever"}

    (deps,) = children[install]
    assert nodes[deps]["step"]["cache"] == {"policy": "on_change", "paths": LOCK_FILES[name]}

    # Actions fork off the dependency step, or off a setup step forked from it.
    start = deps
    if name == "rust_app":
        (start,) = children[deps]
        assert nodes[start]["step"]["cmd"] == "cd crates/app && cargo install cargo-nextest --locked"
        assert nodes[deps]["step"]["cmd"] == "cd crates/app && cargo fetch"
    actions = [key for key in keys(definition) if parent_of.get(key) == start]
    assert [nodes[key]["step"]["label"] for key in actions] == ACTIONS[name]
    for key in actions:
        assert "cache" not in nodes[key]["step"]
        assert not children.get(key)
    assert set(nodes) == {apt, install, deps, start, *actions}

    # The preset's environment reaches every step after the apt base.
    preset_env = nodes[install]["step"]["env"]
    assert "PATH" in preset_env
    for key in set(nodes) - {apt}:
        assert nodes[key]["env"].items() >= preset_env.items()


@pytest.mark.parametrize("name", sorted(PRESETS) + sorted(VARIANTS))
def test_commands_name_no_architecture(name):
    envelope = render_preset(name, {**PRESETS, **VARIANTS})
    for node in envelope["pipelines"][0]["definition"]["nodes"]:
        cmd = node["step"]["cmd"]
        found = [arch for arch in ARCHITECTURES if arch in cmd]
        assert not found, f"{name}: `{node['step']['key']}` hard-codes {found}: {cmd}"


@pytest.mark.parametrize("name", sorted(PRESETS) + sorted(VARIANTS))
def test_preset_envelopes_are_well_formed(name):
    check_envelope(render_preset(name, {**PRESETS, **VARIANTS}))


def test_all_presets_in_one_envelope_are_well_formed():
    for name, fn in PRESETS.items():
        hm.pipeline(name.replace("_", "-"))(fn)
    envelope = render_all()
    assert len(envelope["pipelines"]) == len(PRESETS)
    check_envelope(envelope)


class TestAptBase:
    def test_ir(self):
        def base():
            return hm.apt_base(["git", "curl", "git"])

        (node,) = render(base)["nodes"]
        assert node["step"] == {
            "key": "apt-base",
            "cmd": "apt-get update && apt-get install -y --no-install-recommends curl git && rm -rf /var/lib/apt/lists/*",
            "label": "apt base",
            "image": "ubuntu:24.04",
            "cache": {"policy": "ttl", "duration_seconds": 86400},
        }

    def test_same_packages_give_the_same_step(self):
        first = hm.apt_base(["curl", "git"])
        assert hm.apt_base(("git", "curl")) is first
        assert hm.apt_base("git curl") is first
        assert hm.apt_base(["curl", "git"], image="debian:12") is not first
        assert hm.apt_base(["curl"]) is not first

    def test_image(self):
        def base():
            return hm.apt_base(["curl"], image="debian:12")

        (node,) = render(base)["nodes"]
        assert node["step"]["image"] == "debian:12"

    def test_presets_share_one_base_node(self):
        def two_projects():
            base = hm.apt_base(["build-essential", "ca-certificates", "curl", "git"])
            return [hm.go.project(base=base), hm.rust.project("tools", base=base), base.sh("make", key="make")]

        definition = render(two_projects)
        apt_nodes = [node for node in definition["nodes"] if node["step"].get("label") == "apt base"]
        assert len(apt_nodes) == 1
        base_key = apt_nodes[0]["step"]["key"]
        assert sorted(child for child, parent in parents(definition).items() if parent == base_key) == [
            "go-1-23-4",
            "make",
            "rust-stable",
        ]

    def test_presets_with_the_same_packages_share_it_without_asking(self):
        @hm.pipeline
        def twice():
            return [hm.rust.project("a"), hm.rust.project("b")]

        envelope = render_all()
        check_envelope(envelope)
        nodes = envelope["pipelines"][0]["definition"]["nodes"]
        assert [node["step"].get("label") for node in nodes].count("apt base") == 1

    def test_extra_packages_join_the_base(self):
        def extra():
            return hm.go.project(packages=["protobuf-compiler"])

        definition = render(extra)
        assert nodes_by_key(definition)["apt-base"]["step"]["cmd"] == (
            "apt-get update && apt-get install -y --no-install-recommends "
            "build-essential ca-certificates curl git protobuf-compiler && rm -rf /var/lib/apt/lists/*"
        )


def test_setup_step_runs_in_the_project_with_its_env():
    def prepared():
        project = hm.go.project("svc").setup("go generate ./...", label="generate", env={"GOFLAGS": "-mod=mod"})
        return project.test()

    definition = render(prepared)
    steps = {node["step"]["key"]: node["step"] for node in definition["nodes"]}
    assert steps["generate"] == {
        "key": "generate",
        "cmd": "cd svc && go generate ./...",
        "label": "generate",
        "env": {"GOPATH": "/root/go", "PATH": f"/usr/local/go/bin:/root/go/bin:{SYSTEM_PATH}", "GOFLAGS": "-mod=mod"},
    }
    assert parents(definition)["go-test"] == "generate"
    assert parents(definition)["generate"] == "go-mod-download"


def test_js_rejects_bad_runtimes_managers_and_scripts():
    with pytest.raises(hm.HarmontError, match="unknown JavaScript runtime `python`"):
        hm.js.project(runtime="python")
    with pytest.raises(hm.HarmontError, match="package manager `npm` does not go with bun"):
        hm.js.project(runtime="bun", package_manager="npm")
    with pytest.raises(hm.HarmontError, match="a script name must be a single word"):
        hm.js.project().run("test; rm -rf /")


def test_versions_must_be_plain():
    with pytest.raises(hm.HarmontError, match="Rust version must be a plain version string"):
        hm.rust.toolchain("1.83; curl evil")


@pytest.mark.parametrize(
    ("version", "archive"),
    [("0.14.1", "zig-$(uname -m)-linux-0.14.1"), ("0.15.0", "zig-$(uname -m)-linux-0.15.0"), ("0.13.0", "zig-linux-$(uname -m)-0.13.0")],
)
def test_zig_downloads_follow_the_release_naming(version, archive):
    install = hm.zig.toolchain(version).install
    assert f"https://ziglang.org/download/{version}/{archive}.tar.xz" in install.cmd
