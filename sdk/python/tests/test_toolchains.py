"""The toolchain presets: chains, labels, keys, commands, caches, options, bare actions, setup().

The default renders of every preset are compared with Harmont's own in
``test_conformance.py``; this file covers the options and the variants.
"""

import json
from datetime import timedelta

import pytest
from helpers import edges, envs, keys, parents, steps

import harmont as hm
from harmont._cargo import CargoOpts, cargo_flags, quote
from harmont.cache import CacheForever, CacheOnChange, CacheTTL


def chain(step):
    """Commands from the root to ``step``."""
    out = []
    while step is not None:
        if step.cmd is not None:
            out.append(step.cmd)
        step = step.parent
    return out[::-1]


def labels(step):
    out = []
    while step is not None:
        if step.cmd is not None:
            out.append(step.label)
        step = step.parent
    return out[::-1]


# ---------------------------------------------------------------- shared parts


def test_apt_base_is_shared_by_toolchains_given_as_base():
    base = hm.apt_base(packages=("curl", "git"), image="debian:12")
    assert base.cmd == "apt-get update && apt-get install -y curl git"
    assert (base.label, base.image, base.cache) == (":apt: base", "debian:12", CacheTTL(duration=timedelta(days=1)))
    go, rust = hm.go(base=base), hm.rust.toolchain(base=base)
    ir = hm.pipeline([go.build(), rust.build()])
    # Both builds are labelled "...: build": the slugs collide, so both keys are hashes.
    names = keys(ir)
    assert [names[0], names[1], names[3]] == ["base", "install", "rustup"]
    assert len(names[2]) == len(names[4]) == 12
    assert parents(ir)["install"] == "base" and parents(ir)["rustup"] == "base"
    assert hm.apt_base(packages=("x",), label="mine").label == "mine"


@pytest.mark.parametrize(
    ("make", "tag"),
    [
        (lambda: hm.go(), "go"),
        (lambda: hm.rust.toolchain(), "rust"),
        (lambda: hm.zig(), "zig"),
        (lambda: hm.cmake(), "cmake"),
    ],
)
def test_the_apt_step_is_a_daily_cached_root_with_the_image(make, tag):
    tc = make()
    apt = tc.installed.parent
    assert apt.label == f":{tag}: apt-base"
    assert apt.cache == CacheTTL(duration=timedelta(days=1))
    assert apt.parent.cmd is None
    assert tc.installed.cache == CacheForever(env_keys=())


SETUP = [
    ("elixir", lambda: hm.elixir(path=".")),
    ("python", lambda: hm.python(path=".")),
    ("go", lambda: hm.go(path=".")),
    ("js", lambda: hm.js.project(path=".", runtime="node")),
    ("zig-project", lambda: hm.zig(path=".")),
    ("zig-toolchain", lambda: hm.zig()),
    ("rust", lambda: hm.rust.toolchain()),
    ("cmake", lambda: hm.cmake()),
]


@pytest.mark.parametrize(("name", "make"), SETUP, ids=[n for n, _ in SETUP])
def test_setup_appends_to_the_install_chain_and_returns_a_copy(name, make):
    tc = make()
    before = tc.installed
    advanced = tc.setup("make gen", cwd="sub", label="gen", cache=hm.forever(), env={"G": "1"})
    assert tc.installed is before
    assert type(advanced) is type(tc) and advanced is not tc
    assert advanced.installed.parent is before
    assert advanced.installed.cmd == "cd sub && make gen"
    assert (advanced.installed.label, advanced.installed.env) == ("gen", {"G": "1"})
    again = advanced.setup("two")
    assert again.installed.parent is advanced.installed


def test_setup_comes_before_the_actions():
    go = hm.go().setup("go generate ./...", label="generate")
    assert go.build().parent is go.installed
    rust = hm.rust.toolchain().setup("cargo install sqlx-cli")
    assert rust.build().parent.cmd == "cargo install sqlx-cli"
    cmake = hm.cmake().setup("./gen.sh")
    assert cmake.project().built.parent.cmd == "./gen.sh"
    zig = hm.zig().setup("zig build gen")
    assert zig.project("lib").test().parent.cmd == "zig build gen"


def test_action_keywords_go_to_sh():
    go = hm.go()
    step = go.test(label="unit", key="unit", env={"A": "1"}, cache=hm.forever(), cwd="x")
    assert (step.label, step.key_override, step.env) == ("unit", "unit", {"A": "1"})
    assert step.cmd == "cd x && cd . && go test ./..."
    with pytest.raises(TypeError, match="unexpected keyword argument 'bogus'"):
        go.test(bogus=1)


# ---------------------------------------------------------------- go


def test_go():
    go = hm.go(path="api", version="1.22")
    assert go.path == "api"
    assert go.installed.cmd.startswith("curl -fsSL https://go.dev/dl/go1.22.linux-amd64.tar.gz ")
    assert go.installed.parent.cmd == "apt-get update && apt-get install -y curl ca-certificates git"
    assert [s.cmd for s in (go.build(), go.test(), go.vet(), go.fmt())] == [
        "cd api && go build ./...",
        "cd api && go test ./...",
        "cd api && go vet ./...",
        'cd api && test -z "$(gofmt -l .)"',
    ]
    assert [s.label for s in (go.build(), go.fmt())] == [":go: build", ":go: fmt"]


def test_go_bare_actions_split_their_keywords():
    step = hm.go.test(path="api", version="1.23.0", label="unit", env={"A": "1"})
    assert step.cmd == "cd api && go test ./..."
    assert step.label == "unit" and step.env == {"A": "1"}
    assert "go1.23.0" in step.parent.cmd
    assert hm.go.build().label == ":go: build"
    assert hm.go.vet().cmd == "cd . && go vet ./..." and hm.go.fmt().label == ":go: fmt"


@pytest.mark.parametrize("version", ["1", "1.x", "v1.22", "1.2.3.4", ""])
def test_go_versions_are_checked(version):
    with pytest.raises(ValueError, match=f"hm.go: invalid version {version!r}\n  → use a Go version like \"1.23.2\""):
        hm.go(version=version)


def test_go_version_must_be_a_string():
    with pytest.raises(TypeError, match="hm.go: version must be a string, got float"):
        hm.go(version=1.22)  # type: ignore[arg-type]


# ---------------------------------------------------------------- rust


def test_rust_toolchain():
    tc = hm.rust.toolchain(path="cli", version="1.81.0", components=("clippy",))
    assert "--default-toolchain 1.81.0 --profile minimal --component clippy && " in tc.installed.cmd
    assert tc.installed.label == ":rust: rustup"
    prefix = ". $HOME/.cargo/env && cd cli && "
    assert tc.build().cmd == prefix + "cargo build --locked"
    assert tc.test().cmd == prefix + "cargo test --locked"
    assert tc.doctest().cmd == prefix + "cargo test --locked --doc"
    assert tc.clippy().cmd == prefix + "cargo clippy --all-targets --locked -- -D warnings"
    assert tc.fmt().cmd == prefix + "cargo fmt --all --check"
    assert tc.doc().cmd == prefix + "cargo doc --no-deps --locked"
    assert tc.doc().env == {"RUSTDOCFLAGS": "-D warnings"}
    assert tc.warmup().cmd == prefix + "cargo build --workspace --tests --locked"
    assert [s.label for s in (tc.build(), tc.doctest(), tc.doc(), tc.warmup())] == [
        ":rust: build",
        ":rust: doctest",
        ":rust: doc",
        ":rust: warmup",
    ]


def test_rust_project_shares_a_warmup():
    project = hm.rust.project(path="crates/app")
    assert project.warmup.label == ":rust: warmup"
    assert project.warmup.cache == CacheOnChange(
        paths=("crates/app/Cargo.lock", "crates/app/**/Cargo.toml", "crates/app/**/*.rs")
    )
    assert hm.rust.project().warmup.cache == CacheOnChange(paths=("Cargo.lock", "**/Cargo.toml", "**/*.rs"))
    assert hm.rust.project(path="").warmup.cache == hm.rust.project().warmup.cache
    assert hm.rust.project(cache=hm.forever()).warmup.cache == hm.forever()
    assert project.test().parent is project.warmup
    assert project.fmt().parent is project.toolchain.installed
    assert project.test().cmd.endswith("cargo test --workspace --locked")
    assert project.clippy().cmd.endswith("cargo clippy --workspace --all-targets --locked -- -D warnings")


def test_rust_ci():
    project = hm.rust.project()
    assert [s.label for s in project.ci()] == [":rust: test", ":rust: clippy", ":rust: fmt"]
    full = project.ci(nextest=True, doc=True)
    assert [s.label for s in full] == [":rust: test", ":rust: doctest", ":rust: clippy", ":rust: fmt", ":rust: doc"]
    assert full[0].cmd.endswith("cargo nextest run --workspace --locked")


def tail(cmd):
    return cmd.split(" && ", 2)[2]


def test_cargo_options_in_order_and_quoted():
    project = hm.rust.project()
    assert tail(project.test(features=("a", "b"), nextest=True).cmd) == "cargo nextest run --workspace --features a,b --locked"
    assert tail(project.clippy(all_features=True, deny_warnings=False, extra_lints=("-W clippy::pedantic",)).cmd) == (
        "cargo clippy --workspace --all-targets --all-features --locked -- -W clippy::pedantic"
    )
    assert tail(project.doc(document_private_items=True, no_deps=False).cmd) == (
        "cargo doc --document-private-items --workspace --locked"
    )
    assert tail(project.build(packages=("core", "my crate"), target="wasm32-unknown-unknown").cmd) == (
        "rustup target add wasm32-unknown-unknown && cargo build -p core -p 'my crate' --target wasm32-unknown-unknown --locked"
    )
    assert tail(project.build(target="x86_64-unknown-linux-musl", add_target=False, release=True).cmd) == (
        "cargo build --workspace --target x86_64-unknown-linux-musl --release --locked"
    )
    assert tail(project.build(workspace=True, exclude=("xtask",), profile="dist", locked=False, flags=("--timings",)).cmd) == (
        "cargo build --workspace --exclude xtask --profile dist --timings"
    )
    assert tail(project.test(no_default_features=True, features=("x",), all_targets=True).cmd) == (
        "cargo test --workspace --all-targets --no-default-features --features x --locked"
    )
    assert tail(project.fmt(all=False, check=False, flags=("--verbose",)).cmd) == "cargo fmt --verbose"


def test_doc_keeps_the_users_rustdocflags():
    step = hm.rust.project().doc(env={"RUSTDOCFLAGS": "--cfg docsrs", "A": "1"})
    assert step.env == {"RUSTDOCFLAGS": "--cfg docsrs", "A": "1"}
    assert hm.rust.project().doc(deny_warnings=False).env is None


@pytest.mark.parametrize(
    ("opts", "message"),
    [
        ({"all_features": True, "features": ("a",)}, "--all-features conflicts with features=/no_default_features="),
        ({"release": True, "profile": "dist"}, "release=True conflicts with profile="),
        ({"exclude": ("a",), "packages": ("b",)}, "exclude= cannot combine with packages="),
        ({"exclude": ("a",), "workspace": False}, "exclude= requires workspace=True"),
    ],
)
def test_contradicting_cargo_options(opts, message):
    with pytest.raises(ValueError, match=f"hm.rust: {message}"):
        hm.rust.project().build(**opts)


def test_cargo_flags_directly():
    assert cargo_flags(CargoOpts(locked=False)) == ""
    assert cargo_flags(CargoOpts(features=("a b",))) == " --features 'a b' --locked"
    assert quote("") == "''" and quote("it's") == "'it'\"'\"'s'" and quote("a/b-c.d:e,f@g%h+i=j") == "a/b-c.d:e,f@g%h+i=j"


def test_feature_powerset():
    step = hm.rust.project().feature_powerset(skip=("a b", "c"), keep_going=True)
    assert tail(step.cmd) == "cargo hack check --feature-powerset --depth 2 --no-dev-deps --skip 'a b',c --keep-going"
    install = step.parent
    assert install.cmd == ". $HOME/.cargo/env && cargo install cargo-hack --locked"
    assert (install.label, install.cache) == (":rust: install cargo-hack", CacheForever())
    each = hm.rust.toolchain().feature_powerset(each_feature=True, no_dev_deps=False, include_features=("x",), subcommand="test")
    assert tail(each.cmd) == "cargo hack test --each-feature --include-features x"
    assert each.label == ":rust: feature-powerset"


@pytest.mark.parametrize("version", ["Stable", "1.81 .0", "", "nightly_2024"])
def test_rust_versions_are_checked(version):
    with pytest.raises(ValueError, match=f"hm.rust: invalid version {version!r}"):
        hm.rust.toolchain(version=version)


def test_rust_entry_is_not_callable():
    with pytest.raises(TypeError):
        hm.rust()  # type: ignore[operator]


# ---------------------------------------------------------------- js / ts


def js_chain(project):
    return [(s_label, s_cmd) for s_label, s_cmd in zip(labels(project.installed), chain(project.installed))]


def test_node_with_npm_by_default(tmp_path):
    project = hm.js.project(path=str(tmp_path), version="20")
    assert js_chain(project) == [
        (":node: apt-base", "apt-get update && apt-get install -y curl ca-certificates"),
        (":node: install", "curl -fsSL https://deb.nodesource.com/setup_20.x | bash - && apt-get install -y nodejs"),
        (":node: deps", f"cd {tmp_path} && npm ci"),
    ]
    assert project.installed.cache == CacheOnChange(paths=(f"{tmp_path}/package-lock.json",))
    step = project.run("test")
    assert (step.cmd, step.label) == (f"cd {tmp_path} && npm run test", ":node: test")
    assert project.install() is project.installed
    assert hm.ts is hm.js


@pytest.mark.parametrize(
    ("pm", "bootstrap", "deps", "run"),
    [
        ("pnpm", "corepack enable pnpm", "pnpm install --frozen-lockfile", "pnpm run"),
        ("yarn-classic", "corepack enable", "yarn install --frozen-lockfile", "yarn run"),
        ("yarn-berry", "corepack enable", "yarn install --immutable", "yarn run"),
        ("bun", "curl -fsSL https://bun.sh/install | BUN_INSTALL=/usr/local bash", "bun install --frozen-lockfile", "bun run"),
    ],
)
def test_node_with_other_package_managers(pm, bootstrap, deps, run):
    project = hm.js.project(path="web", runtime="node", pm=pm)
    boot = project.installed.parent
    assert (boot.cmd, boot.label, boot.cache) == (bootstrap, f":node: {pm}", CacheForever())
    assert project.installed.cmd == f"cd web && {deps}"
    assert project.run("lint").cmd == f"cd web && {run} lint"
    apt = boot.parent.parent
    assert apt.cmd.endswith("curl ca-certificates unzip" if pm == "bun" else "curl ca-certificates")


def test_bun_runtime():
    project = hm.js.project(path=".", runtime="bun", version="1.1.30")
    assert labels(project.installed) == [":bun: apt-base", ":bun: install", ":bun: deps"]
    assert chain(project.installed)[1] == 'curl -fsSL https://bun.sh/install | BUN_INSTALL=/usr/local bash -s "bun-v1.1.30"'
    assert project.installed.cache == CacheOnChange(paths=("./bun.lock",))
    assert project.run("build").label == ":bun: build"


def test_deno_runtime():
    project = hm.js.project(path="app", runtime="deno", version="2.0")
    assert labels(project.installed) == [":deno: apt-base", ":deno: install", ":deno: deps"]
    assert chain(project.installed)[1] == (
        'curl -fsSL https://deno.land/install.sh | sh -s "v2.0" && ln -sf $HOME/.deno/bin/deno /usr/local/bin/deno'
    )
    assert project.installed.cmd == "cd app && deno install"
    assert project.run("check").cmd == "cd app && deno task check"


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"runtime": "deno", "pm": "npm"}, 'hm.js: runtime="deno" manages its own dependencies — do not set pm'),
        ({"pm": "deno"}, 'hm.js: pm="deno" is not valid — use runtime="deno" instead'),
        ({"runtime": "bun", "pm": "npm"}, 'hm.js: runtime="bun" only supports pm="bun"'),
        ({"runtime": "node", "version": "v22"}, "hm.js: invalid version 'v22'\n  → use a Node major version"),
        ({"runtime": "bun", "version": "1"}, "hm.js: invalid version '1'\n  → use a semver version"),
        ({"runtime": "node", "pm": "cargo"}, "hm.js: unknown pm 'cargo'"),
    ],
)
def test_js_errors(kw, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        hm.js.project(path=".", **kw)


def write(tmp_path, files):
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    return str(tmp_path)


@pytest.mark.parametrize(
    ("files", "tag", "pm_label", "deps"),
    [
        ({"package-lock.json": "{}"}, "node", None, "npm ci"),
        ({"pnpm-lock.yaml": ""}, "node", ":node: pnpm", "pnpm install --frozen-lockfile"),
        ({"yarn.lock": ""}, "node", ":node: yarn-classic", "yarn install --frozen-lockfile"),
        ({"bun.lockb": ""}, "bun", None, "bun install --frozen-lockfile"),
        ({"deno.lock": ""}, "deno", None, "deno install"),
        ({"package.json": '{"engines": {"bun": "1"}}'}, "bun", None, "bun install --frozen-lockfile"),
        ({"package.json": '{"packageManager": "yarn@4.1.0"}'}, "node", ":node: yarn-berry", "yarn install --immutable"),
        ({"package.json": "not json", "yarn.lock": ""}, "node", ":node: yarn-classic", "yarn install --frozen-lockfile"),
        ({"package.json": "[1]"}, "node", None, "npm ci"),
    ],
)
def test_detection(tmp_path, files, tag, pm_label, deps):
    path = write(tmp_path, files)
    project = hm.js.project(path=path)
    assert project.tag == tag
    assert project.installed.cmd == f"cd {path} && {deps}"
    if pm_label is not None:
        assert project.installed.parent.label == pm_label


def test_a_pinned_package_manager_is_installed_at_that_version(tmp_path):
    path = write(tmp_path, {"package.json": json.dumps({"packageManager": "pnpm@9.1.0"})})
    boot = hm.js.project(path=path).installed.parent
    assert boot.cmd == "corepack enable pnpm && corepack install -g pnpm@9.1.0"
    assert boot.cache == CacheOnChange(paths=(f"{path}/package.json",))
    # Given explicitly, nothing is detected and nothing pinned.
    assert hm.js.project(path=path, pm="pnpm").installed.parent.cmd == "corepack enable pnpm"


def test_detection_functions():
    from harmont._detect import DetectedToolchain, detect, detect_from_lockfiles, detect_from_package_json

    assert detect_from_package_json({"packageManager": "yarn@1.22.0"}) == DetectedToolchain(pm="yarn-classic", pm_version="1.22.0")
    assert detect_from_package_json({"packageManager": "yarn"}) == DetectedToolchain(pm="yarn-classic")
    assert detect_from_package_json({"engines": {"deno": "*"}, "packageManager": "npm@10"}) == DetectedToolchain(
        runtime="deno", pm="npm", pm_version="10"
    )
    assert detect_from_lockfiles(["yarn.lock", "pnpm-lock.yaml"]) == DetectedToolchain(pm="pnpm")
    assert detect_from_lockfiles([]) == DetectedToolchain()
    assert detect("/nonexistent/dir") == DetectedToolchain()


# ---------------------------------------------------------------- python, py.uv


def test_python():
    tc = hm.python(path="svc", uv_version="0.4.18")
    assert labels(tc.installed) == [":python: apt-base", ":python: uv-install", ":python: uv-sync"]
    assert chain(tc.installed)[0] == "apt-get update && apt-get install -y curl ca-certificates python3 python3-venv"
    assert chain(tc.installed)[1].startswith("UV_VERSION=0.4.18 curl -LsSf https://astral.sh/uv/install.sh | sh")
    assert tc.installed.cmd == "cd svc && uv sync --all-extras"
    assert tc.installed.cache == CacheOnChange(paths=("svc/uv.lock", "svc/pyproject.toml"))
    assert [s.cmd for s in (tc.test(), tc.lint(), tc.fmt(), tc.typecheck(), tc.typecheck(paths=["a", "b"]))] == [
        "cd svc && uv run pytest",
        "cd svc && uv run ruff check .",
        "cd svc && uv run ruff format --check .",
        "cd svc && uv run ty check .",
        "cd svc && uv run ty check a b",
    ]
    assert hm.python.typecheck(paths="src", label="types").cmd == "cd . && uv run ty check src"
    assert hm.python.lint(path="x").label == ":python: lint"
    with pytest.raises(ValueError, match="hm.python: invalid uv_version '0.4'"):
        hm.python(uv_version="0.4")


def test_py_uv():
    project = hm.py.uv(path="lib", version="latest")
    assert chain(project.installed)[1].startswith("curl -LsSf https://astral.sh/uv/install.sh | sh && ")
    assert [(s.cmd, s.label) for s in (project.run("mypy --strict ."), project.build(), project.lock_check(), project.publish())] == [
        ("cd lib && uv run mypy --strict .", ":python: mypy"),
        ("cd lib && uv build", ":python: build"),
        ("cd lib && uv lock --check", ":python: lock-check"),
        ("cd lib && uv publish", ":python: publish"),
    ]
    assert project.run("  ").label == ":python: run"
    assert hm.py.uv.run("pytest -x", path="lib").cmd == "cd lib && uv run pytest -x"
    assert hm.py.uv.lock_check().label == ":python: lock-check"
    with pytest.raises(ValueError, match="py.uv: invalid version 'x'"):
        hm.py.uv(version="x")
    from harmont.py import UvProject, uv

    assert isinstance(project, UvProject) and uv is hm.py.uv


# ---------------------------------------------------------------- zig


def test_zig_toolchain_and_projects():
    tc = hm.zig(version="0.13.0")
    assert "zig-linux-x86_64-0.13.0.tar.xz" in tc.installed.cmd
    assert "zig-x86_64-linux-0.14.1.tar.xz" in hm.zig().installed.cmd
    a, b = tc.project("lib-a"), tc.project(path="lib-b")
    assert a.installed is b.installed is tc.installed
    assert [(s.cmd, s.label) for s in (a.build(), a.test(), b.fmt())] == [
        ("cd lib-a && zig build", ":zig: lib-a build"),
        ("cd lib-a && zig build test", ":zig: lib-a test"),
        ("cd lib-b && zig fmt --check .", ":zig: lib-b fmt"),
    ]
    ir = hm.pipeline([a.build(), b.build()])
    assert keys(ir) == ["apt-base", "install", "lib-a-build", "lib-b-build"]


def test_zig_project_form_and_bare_actions():
    project = hm.zig(path=".")
    assert project.build().label == ":zig: . build"
    assert hm.zig.test(path="x", label="t").label == "t"
    assert hm.zig.fmt().cmd == "cd . && zig fmt --check ."
    with pytest.raises(ValueError, match="hm.zig: invalid version '0.14'"):
        hm.zig(version="0.14")


# ---------------------------------------------------------------- cmake


def test_cmake_project():
    project = hm.cmake(path="agent", compiler="gcc-14", generator="make", ccache=False, defines={"A": "1"}, target="app")
    apt = project.toolchain.installed.parent
    assert apt.cmd == "apt-get update && apt-get install -y cmake build-essential pkg-config clang-format clang-tidy gcc-14 g++-14"
    assert project.toolchain.installed.cmd == "cmake --version && gcc-14 --version"
    assert project.built.cmd == (
        "cd agent && cmake -S . -B build -G Unix Makefiles -DCMAKE_EXPORT_COMPILE_COMMANDS=ON "
        "-DCMAKE_C_COMPILER=gcc-14 -DCMAKE_CXX_COMPILER=g++-14 -DA=1 && "
        "cmake --build build --parallel $(nproc) --target app"
    )
    assert project.built.cache == CacheOnChange(paths=("agent/CMakeLists.txt",))
    assert project.build() is project.built
    assert project.test(parallel=False).cmd == (
        "cmake --build agent/build --parallel $(nproc) --target app && ctest --test-dir agent/build --output-on-failure"
    )
    assert project.install(prefix="/opt").cmd == "cmake --install agent/build --prefix /opt"
    assert project.package(generator="TGZ").cmd == "cd agent/build && cpack -G TGZ"
    assert project.lint().cmd == "cd agent && run-clang-tidy -p build"
    fmt = project.fmt(fix=True)
    assert fmt.parent is project.toolchain.installed
    assert fmt.cmd.endswith("| xargs clang-format -i")
    assert [s.label for s in (project.install(), project.package(), project.lint(), fmt)] == [
        ":cmake: install",
        ":cmake: package",
        ":cmake: lint",
        ":cmake: fmt",
    ]


def test_cmake_clang_preset_and_vcpkg():
    tc = hm.cmake(compiler="clang-18")
    assert tc.installed.parent.cmd.endswith("clang-format clang-tidy clang-18 lld-18")
    assert tc.installed.cmd == "cmake --version && ninja --version && ccache --version && clang-18 --version"
    project = tc.project(path=".", preset="ci", deps="vcpkg")
    assert project.built.cmd == "cd . && cmake --preset ci && cmake --build build --parallel $(nproc)"
    assert project.built.cache == CacheOnChange(paths=("vcpkg.json",))
    vcpkg = project.built.parent
    assert (vcpkg.label, vcpkg.cache) == (":cmake: vcpkg", CacheOnChange(paths=("vcpkg.json",)))
    assert vcpkg.cmd.endswith("cd . && /opt/vcpkg/vcpkg install")


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"compiler": "msvc"}, "hm.cmake: invalid compiler 'msvc'"),
        ({"compiler": "gcc-"}, "hm.cmake: invalid compiler 'gcc-'"),
        ({"generator": "bazel"}, "hm.cmake: invalid generator 'bazel'"),
        ({"path": ".", "deps": "conan"}, "hm.cmake: invalid deps 'conan'"),
    ],
)
def test_cmake_errors(kw, message):
    with pytest.raises(ValueError, match=message):
        hm.cmake(**kw)


def test_cmake_bare_actions():
    assert hm.cmake.build(label="ignored").label == ":cmake: build"
    assert hm.cmake.test(defines={"X": "1"}).cmd.startswith("cmake --build ./build")
    assert hm.cmake.lint(path="p").cmd == "cd p && run-clang-tidy -p build"
    assert hm.cmake.install().label == ":cmake: install"
    assert hm.cmake.package().label == ":cmake: package"
    assert hm.cmake.fmt().label == ":cmake: fmt"
    assert isinstance(hm.cmake(), hm.CMakeToolchain) and isinstance(hm.cmake(path="."), hm.CMakeProject)


# ---------------------------------------------------------------- elixir


def test_elixir():
    project = hm.elixir(path="app", elixir_version="1.17.2", otp_version="26")
    assert labels(project.installed) == [":ex: apt-base", ":ex: erlang-install", ":ex: elixir-install", ":ex: mix-deps"]
    assert "esl-erlang_26-1~debian~bookworm_amd64.deb" in chain(project.installed)[1]
    assert "v1.17.2/elixir-otp-26.zip" in chain(project.installed)[2]
    assert project.installed.env == {"ELIXIR_ERL_OPTIONS": "+fnu"}
    assert project.installed.cache == CacheOnChange(paths=("app/mix.lock",))
    assert project.test(cover=True, partitions=4).cmd == "cd app && mix test --cover --partitions 4"
    assert project.credo(strict=False).cmd == "cd app && mix credo"
    assert project.release(mix_env="staging").cmd == "cd app && MIX_ENV=staging mix release"
    assert (project.mix("ecto.migrate").label, project.mix("x").cmd) == (":ex: ecto.migrate", "cd app && mix x")
    assert project.compile(env={"A": "1"}).env == {"ELIXIR_ERL_OPTIONS": "+fnu", "A": "1"}


def test_elixir_dialyzer_shares_one_plt_per_project():
    project = hm.elixir()
    a, b = project.dialyzer(), project.dialyzer(label="again")
    assert a.parent is b.parent is project.plt()
    assert project.plt().cache == CacheOnChange(paths=("./mix.lock",))
    ir = hm.pipeline([a, b])
    assert keys(ir).count("plt") == 1
    assert repr(project).startswith("ElixirProject(path='.', installed=Step(")
    assert project.setup("mix gen").plt() is not project.plt()


def test_elixir_bare_actions():
    assert hm.elixir.test(cover=True, path="x").cmd == "cd x && mix test --cover"
    assert hm.elixir.credo(strict=False).cmd == "cd . && mix credo"
    assert hm.elixir.plt(path="y").label == ":ex: plt"
    assert hm.elixir.mix("deps.tree", label="tree").label == "tree"
    assert hm.elixir.release().cmd == "cd . && MIX_ENV=prod mix release"
    with pytest.raises(ValueError, match="hm.elixir: invalid elixir version '1.18'"):
        hm.elixir(elixir_version="1.18")
    with pytest.raises(ValueError, match="hm.elixir: invalid otp version 'OTP-27'"):
        hm.elixir(otp_version="OTP-27")


def test_a_whole_preset_pipeline_renders():
    go = hm.go(path="api")
    ir = hm.pipeline([go.build(), go.test()], env={"CI": "true"})
    assert keys(ir) == ["apt-base", "install", "build", "test"]
    assert edges(ir, "builds_in") == [("apt-base", "install"), ("install", "build"), ("install", "test")]
    assert steps(ir)["apt-base"]["cache"] == {"policy": "ttl", "duration_seconds": 86400, "env_keys": []}
    assert steps(ir)["install"]["cache"] == {"policy": "forever", "env_keys": []}
    assert envs(ir)["test"]["CI"] == "true"
