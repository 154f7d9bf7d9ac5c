/** Toolchain presets: the IR of each (pinned to Python's goldens), the shape of their chains, and aptBase. */

import * as hm from "@harmont/hm";
import type { Steps } from "@harmont/hm";
import * as toolchains from "@harmont/hm/toolchains";
import { assert, assertEquals, assertThrows, canonical } from "./assert.ts";
import { BASE_ENV, keys, nodesByKey, parents, render, renderFile } from "./helpers.ts";

const SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

function rustApp(): Steps {
  let project = hm.rust.toolchain("1.83.0").project("crates/app");
  project = project.setup("cargo install cargo-nextest --locked", { label: "nextest", cache: hm.forever() });
  return [project, project.doc()];
}

function jsNodePnpm(): Steps {
  const project = hm.js.project(".", { packageManager: "pnpm" });
  return [project.install(), project.run("lint"), project.run("test")];
}

function cmakeAll(): Steps {
  const project = hm.cmake.project();
  return [project.build(), project.test(), project.fmt(), project.lint(), project.package()];
}

function elixirAll(): Steps {
  const project = hm.elixir.project();
  return [project.compile(), project.test(), project.format(), project.credo(), project.dialyzer()];
}

/** The configurations of the Python SDK's golden files (tests/golden/NAME.json). */
const PRESETS: Record<string, () => Steps> = {
  rust: () => hm.rust.project(),
  rust_app: rustApp,
  go: () => hm.go.project(),
  python: () => hm.python.project(),
  py_uv: () => hm.py.uv.project(),
  js_node_npm: () => hm.js.project(),
  js_node_pnpm: jsNodePnpm,
  ts_bun: () => hm.ts.project(".", { runtime: "bun" }),
  js_deno: () => hm.js.project(".", { runtime: "deno" }),
  zig: () => hm.zig.project(),
  cmake: cmakeAll,
  elixir: elixirAll,
};

/** Other configurations the Python SDK's tests render. */
const VARIANTS: Record<string, () => Steps> = {
  go_version: () => hm.go.toolchain("1.22.10").project("svc"),
  zig_version: () => hm.zig.project(".", { version: "0.15.1" }),
  bun_version: () => hm.ts.project(".", { runtime: "bun", version: "1.1.38" }),
  deno_version: () => hm.js.project(".", { runtime: "deno", version: "2.1.4" }),
  node_yarn: () => hm.js.project(".", { version: "20", packageManager: "yarn" }),
  uv_python: () => hm.py.uv.project(".", { python: "3.13" }),
  elixir_version: () => hm.elixir.project(".", { version: "1.18.1" }),
  rust_nightly: () => hm.rust.project(".", { version: "nightly" }),
};

/**
 * SHA-256 of the canonical JSON (sorted keys, no spaces) of the envelope the
 * Python SDK renders for each configuration as a pipeline named after it.
 */
const PYTHON_DIGESTS: Record<string, string> = {
  rust: "dafb413a0bd2cd7189c6923cbe7331747b8b021a6b2554eae91bf9619aef8978",
  rust_app: "ddc161cd48aee48fe6a9e38ddf895cbb53e3c90926ecf47ea9d07a8baa6a6239",
  go: "184ecddbde7b11a2464e71339e2264e3948694d6ef18387efbf786f1fe2bc387",
  python: "8c6b60976a0073891d0ebcba86f716b42f01327c66e536afa1798ed09bbb4c97",
  py_uv: "d37659422ad49fd7c5305445a1d61ed7da0a7ead12482acee591db91b47481d5",
  js_node_npm: "a6d522df9da60f8591534267edd92639a6063a542de411bc907ab16f85e00ecc",
  js_node_pnpm: "01c3dbd9a3a3092cde25918aee09efedc3aafae1de1d08e3d6f01ec3e7096c1c",
  ts_bun: "70c5948aa00c719cc6a0527513d9a023b222991d5e98be44b60f784474d3485a",
  js_deno: "c5660c25119f378a027995192d5e6a3cc5470c2761879a6dc7576cc47ae159da",
  zig: "2557715342fd8acfc2ad895c66e3c24a30df9bc265e8acfd4348e970abd6a256",
  cmake: "0fb96ae14f367f473d3f533fb789c92fcf6b077233eb2a9eddb1e2b814651811",
  elixir: "8732155afefb001f6212546d421555c61f1a7af1be633ecf9a3b3ef73e6c01fc",
  go_version: "dbff1ab0462c986b5c221a075e178c0ac6e170240e1ef1a7663729f8369f8fed",
  zig_version: "39d598631648b3cf1926e0233b1f287917fd11573b4f2490680abc3af9c3bd28",
  bun_version: "4bab9d82cf0f941563de24f834a634afc2da493761639acbef26a80eebd0b10f",
  deno_version: "ed9787675252dede82bb32edec99c850c02eea2bcf642b94c894e70a1e232641",
  node_yarn: "ba6a102d00ae96d9a0314a48f03a547a306f116705c86370fa36e9adc2497c47",
  uv_python: "818e674a9e079c5512f797bdb1797e52a461edfbe77bd7b56caaee275edaa741",
  elixir_version: "69322db99cdfa7a14c0e86313da20d692b5b2547bd3ea86133b0fa29d3ba08e0",
  rust_nightly: "5e18d9be4748fd8e957befc85d21410a77b5c0f212f79b53e4a11bd58b64dec9",
};

/** The files each golden's dependency step is cached on. */
const LOCK_FILES: Record<string, string[]> = {
  rust: ["Cargo.lock"],
  rust_app: ["crates/app/Cargo.lock"],
  go: ["go.sum"],
  python: ["requirements.txt", "pyproject.toml"],
  py_uv: ["uv.lock"],
  js_node_npm: ["package-lock.json"],
  js_node_pnpm: ["pnpm-lock.yaml"],
  ts_bun: ["bun.lock", "bun.lockb"],
  js_deno: ["deno.lock"],
  zig: ["build.zig.zon"],
  cmake: ["CMakeLists.txt", "**/CMakeLists.txt", "**/*.cmake"],
  elixir: ["mix.lock"],
};

/** Labels of each golden's action steps, in order. */
const ACTIONS: Record<string, string[]> = {
  rust: ["cargo fmt", "cargo clippy", "cargo build", "cargo test", "cargo doctest"],
  rust_app: ["cargo fmt", "cargo clippy", "cargo build", "cargo test", "cargo doctest", "cargo doc"],
  go: ["gofmt", "go vet", "go build", "go test"],
  python: ["ruff check", "ruff format", "mypy", "pytest"],
  py_uv: ["ruff check", "ruff format", "mypy", "pytest"],
  js_node_npm: ["npm test"],
  js_node_pnpm: ["pnpm lint", "pnpm test"],
  ts_bun: ["bun test"],
  js_deno: ["deno test"],
  zig: ["zig fmt", "zig build", "zig build test"],
  cmake: ["cmake build", "ctest", "clang-format", "clang-tidy", "cpack"],
  elixir: ["mix compile", "mix test", "mix format", "mix credo", "mix dialyzer"],
};

function renderPreset(name: string, steps: () => Steps) {
  hm.__reset();
  return renderFile({ slug: name.replace(/_/g, "-"), pipeline: steps }).envelope;
}

export const tests: Record<string, () => void> = {
  "every preset renders what Python renders": () => {
    for (const [name, steps] of Object.entries({ ...PRESETS, ...VARIANTS })) {
      const digest = globalThis.__hm_sha256(canonical(renderPreset(name, steps)));
      assertEquals(digest, PYTHON_DIGESTS[name], name);
    }
  },

  "go's default project in full": () => {
    hm.__reset();
    const env = { GOPATH: "/root/go", PATH: `/usr/local/go/bin:/root/go/bin:${SYSTEM_PATH}` };
    const action = (key: string, cmd: string) => ({ step: { key, cmd, label: key === "gofmt" ? "gofmt" : key.replace("-", " "), env }, env: { ...BASE_ENV, ...env } });
    assertEquals(render(hm.go.project()), {
      version: "0",
      nodes: [
        {
          step: {
            key: "apt-base",
            cmd: "apt-get update && apt-get install -y --no-install-recommends build-essential ca-certificates curl git && rm -rf /var/lib/apt/lists/*",
            label: "apt base",
            image: "ubuntu:24.04",
            cache: { policy: "ttl", duration_seconds: 86400 },
          },
          env: BASE_ENV,
        },
        {
          step: {
            key: "go-1-23-4",
            cmd: 'curl -fsSL "https://go.dev/dl/go1.23.4.linux-$(dpkg --print-architecture).tar.gz" | tar -C /usr/local -xz',
            label: "go 1.23.4",
            env,
            cache: { policy: "forever" },
          },
          env: { ...BASE_ENV, ...env },
        },
        {
          step: { key: "go-mod-download", cmd: "go mod download", label: "go mod download", env, cache: { policy: "on_change", paths: ["go.sum"] } },
          env: { ...BASE_ENV, ...env },
        },
        action("gofmt", 'test -z "$(gofmt -l .)" || { gofmt -l .; exit 1; }'),
        action("go-vet", "go vet ./..."),
        action("go-build", "go build ./..."),
        action("go-test", "go test ./..."),
      ],
      node_holes: [],
      edge_property: "directed",
      edges: [
        [0, 1, "builds_in"],
        [1, 2, "builds_in"],
        [2, 3, "builds_in"],
        [2, 4, "builds_in"],
        [2, 5, "builds_in"],
        [2, 6, "builds_in"],
      ],
    });
  },

  "chains: apt base, install, dependencies, actions": () => {
    for (const [name, steps] of Object.entries(PRESETS)) {
      const definition = renderPreset(name, steps).pipelines[0]!.definition;
      const nodes = nodesByKey(definition);
      const parentOf = parents(definition);
      const children: Record<string, string[]> = {};
      for (const [child, parent] of Object.entries(parentOf)) (children[parent] ??= []).push(child);
      assert(!definition.edges.some(([, , kind]) => kind === "depends_on"), name);

      const roots = keys(definition).filter((key) => !(key in parentOf));
      assertEquals(roots.length, 1, `${name}: one root`);
      const apt = nodes[roots[0]!]!.step;
      assertEquals(apt.label, "apt base", name);
      assertEquals(apt.image, "ubuntu:24.04", name);
      assertEquals(apt.cache, { policy: "ttl", duration_seconds: 86400 }, name);
      assert(apt.cmd.startsWith("apt-get update && apt-get install -y --no-install-recommends "), name);

      const [install, ...moreInstalls] = children[apt.key] ?? [];
      assertEquals(moreInstalls, [], name);
      assertEquals(nodes[install!]!.step.cache, { policy: "forever" }, name);
      const [deps, ...moreDeps] = children[install!] ?? [];
      assertEquals(moreDeps, [], name);
      assertEquals(nodes[deps!]!.step.cache, { policy: "on_change", paths: LOCK_FILES[name] }, name);

      let start = deps!;
      if (name === "rust_app") {
        start = children[deps!]![0]!;
        assertEquals(nodes[start]!.step.cmd, "cd crates/app && cargo install cargo-nextest --locked");
        assertEquals(nodes[deps!]!.step.cmd, "cd crates/app && cargo fetch");
      }
      const actions = keys(definition).filter((key) => parentOf[key] === start);
      assertEquals(actions.map((key) => nodes[key]!.step.label), ACTIONS[name], name);
      for (const key of actions) {
        assert(!("cache" in nodes[key]!.step), `${name}: ${key} is not cached`);
        assert(!children[key], `${name}: ${key} has no children`);
      }
      const presetEnv = nodes[install!]!.step.env ?? {};
      assert("PATH" in presetEnv, name);
      for (const key of Object.keys(nodes)) {
        if (key === apt.key) continue;
        for (const [k, v] of Object.entries(presetEnv)) assertEquals(nodes[key]!.env[k], v, `${name}: ${key} ${k}`);
      }
    }
  },

  "commands name no architecture": () => {
    for (const [name, steps] of Object.entries({ ...PRESETS, ...VARIANTS })) {
      for (const node of renderPreset(name, steps).pipelines[0]!.definition.nodes) {
        const found = ["x86_64", "amd64", "aarch64", "arm64", "x64", "i686"].filter((arch) => node.step.cmd.includes(arch));
        assertEquals(found, [], `${name}: ${node.step.key}`);
      }
    }
  },

  "the toolchains module exports the same presets": () => {
    assert(toolchains.rust === hm.rust && toolchains.go === hm.go && toolchains.zig === hm.zig);
    assert(toolchains.cmake === hm.cmake && toolchains.elixir === hm.elixir);
    assert(toolchains.python === hm.python && toolchains.py === hm.python && hm.py === hm.python);
    assert(hm.py.uv === hm.python.uv && hm.py.uv instanceof toolchains.Uv);
    assert(toolchains.js === hm.js && hm.ts === hm.js && toolchains.ts === hm.js);
    assert(toolchains.aptBase === hm.aptBase && toolchains.Project === hm.Project);
    assert(hm.rust.project() instanceof hm.Project && hm.rust.toolchain() instanceof hm.Toolchain);
    assertEquals(
      [hm.rust.DEFAULT_VERSION, hm.go.DEFAULT_VERSION, hm.zig.DEFAULT_VERSION, hm.elixir.DEFAULT_VERSION, hm.py.uv.DEFAULT_PYTHON],
      ["stable", "1.23.4", "0.14.1", "1.17.3", "3.12"],
    );
    assertEquals(hm.js.DEFAULT_VERSIONS, { node: "22", bun: "latest", deno: "latest" });
    assertEquals(toolchains.SYSTEM_PATH, SYSTEM_PATH);
  },

  "rust actions": () => {
    hm.__reset();
    const project = hm.rust.project("crates/x/");
    const cmds = [project.build(), project.test(), project.doctest(), project.clippy(), project.fmt(), project.doc(), ...project.ci()].map(
      (s) => [s.cmd, s.label],
    );
    assertEquals(cmds, [
      ["cd crates/x/ && cargo build --workspace --all-targets", "cargo build"],
      ["cd crates/x/ && cargo test --workspace", "cargo test"],
      ["cd crates/x/ && cargo test --workspace --doc", "cargo doctest"],
      ["cd crates/x/ && cargo clippy --workspace --all-targets -- -D warnings", "cargo clippy"],
      ["cd crates/x/ && cargo fmt --all -- --check", "cargo fmt"],
      ["cd crates/x/ && cargo doc --workspace --no-deps", "cargo doc"],
      ["cd crates/x/ && cargo fmt --all -- --check", "cargo fmt"],
      ["cd crates/x/ && cargo clippy --workspace --all-targets -- -D warnings", "cargo clippy"],
      ["cd crates/x/ && cargo build --workspace --all-targets", "cargo build"],
      ["cd crates/x/ && cargo test --workspace", "cargo test"],
      ["cd crates/x/ && cargo test --workspace --doc", "cargo doctest"],
    ]);
    assertEquals(project.start.cache?.toIr(), { policy: "on_change", paths: ["crates/x/Cargo.lock"] });
    assertEquals(project.start.parent?.label, "rust stable");
  },

  "go, zig and elixir actions": () => {
    hm.__reset();
    const go = hm.go.project();
    assertEquals([go.build(), go.test(), go.vet(), go.fmt()].map((s) => s.cmd), [
      "go build ./...",
      "go test ./...",
      "go vet ./...",
      'test -z "$(gofmt -l .)" || { gofmt -l .; exit 1; }',
    ]);
    const zig = hm.zig.project();
    assertEquals([zig.build(), zig.test(), zig.fmt()].map((s) => [s.cmd, s.label]), [
      ["zig build", "zig build"],
      ["zig build test", "zig build test"],
      ["zig fmt --check .", "zig fmt"],
    ]);
    const ex = hm.elixir.project("app");
    assertEquals([ex.compile(), ex.test(), ex.format(), ex.credo(), ex.dialyzer()].map((s) => [s.cmd, s.label]), [
      ["cd app && mix compile --warnings-as-errors", "mix compile"],
      ["cd app && mix test", "mix test"],
      ["cd app && mix format --check-formatted", "mix format"],
      ["cd app && mix credo --strict", "mix credo"],
      ["cd app && mix dialyzer", "mix dialyzer"],
    ]);
  },

  "python and uv actions": () => {
    hm.__reset();
    const pip = hm.python.project();
    const uv = hm.py.uv.project("svc");
    assertEquals([pip.test(), pip.lint(), pip.fmt(), pip.typecheck()].map((s) => [s.cmd, s.label]), [
      ["python -m pytest", "pytest"],
      ["ruff check .", "ruff check"],
      ["ruff format --check .", "ruff format"],
      ["mypy .", "mypy"],
    ]);
    assertEquals([uv.test(), uv.lint(), uv.fmt(), uv.typecheck()].map((s) => s.cmd), [
      "cd svc && uv run python -m pytest",
      "cd svc && uv run ruff check .",
      "cd svc && uv run ruff format --check .",
      "cd svc && uv run mypy .",
    ]);
    const tools = hm.python.toolchain({ tools: ["ruff", "black", "ruff"] });
    assertEquals(tools.install.cmd, "python3 -m venv /opt/venv && /opt/venv/bin/pip install --upgrade pip black ruff");
    assertEquals(hm.python.toolchain({ tools: [] }).install.cmd, "python3 -m venv /opt/venv && /opt/venv/bin/pip install --upgrade pip ");
    assertEquals(hm.py.uv.toolchain("3.11").install.label, "uv python 3.11");
    assertEquals(hm.py.uv.toolchain("3.11").env.UV_PYTHON, "3.11");
  },

  "cmake actions and build type": () => {
    hm.__reset();
    const project = hm.cmake.project("native", { buildType: "Debug" });
    assertEquals(
      project.start.cmd,
      "cd native && cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Debug -DCMAKE_EXPORT_COMPILE_COMMANDS=ON",
    );
    assertEquals(project.start.cache?.toIr(), {
      policy: "on_change",
      paths: ["native/CMakeLists.txt", "native/**/CMakeLists.txt", "native/**/*.cmake"],
    });
    assertEquals([project.build(), project.test(), project.fmt(), project.lint(), project.package()].map((s) => s.cmd), [
      "cd native && cmake --build build",
      "cd native && cmake --build build && ctest --test-dir build --output-on-failure",
      "cd native && find . -path ./build -prune -o \\( -name '*.c' -o -name '*.cc' -o -name '*.cpp' -o -name '*.h' -o -name '*.hpp' \\) -print | xargs -r clang-format --dry-run --Werror",
      "cd native && find . -path ./build -prune -o \\( -name '*.c' -o -name '*.cc' -o -name '*.cpp' \\) -print | xargs -r clang-tidy -p build",
      "cd native && cmake --build build && cd build && cpack",
    ]);
    assertEquals(hm.cmake.toolchain().buildType, "Release");
    assertThrows(() => hm.cmake.toolchain({ buildType: "Debug; rm -rf /" }), "CMake build type version must be a plain version string");
  },

  "js runtimes and package managers": () => {
    hm.__reset();
    const yarn = hm.js.toolchain("node", "20", { packageManager: "yarn" });
    assertEquals(
      yarn.install.cmd,
      "curl -fsSL https://deb.nodesource.com/setup_20.x | bash - && apt-get install -y nodejs && rm -rf /var/lib/apt/lists/* && corepack enable yarn",
    );
    assertEquals(yarn.install.label, "node 20");
    const project = yarn.project("web");
    assertEquals([project.install().cmd, project.run("build").cmd, project.run("build").label], [
      "cd web && yarn install --immutable",
      "cd web && yarn run build",
      "yarn build",
    ]);
    assertEquals(project.install().cache?.toIr(), { policy: "on_change", paths: ["web/yarn.lock"] });
    assertEquals(hm.js.toolchain("bun", "1.1.38").install.cmd, "curl -fsSL https://bun.sh/install | bash -s bun-v1.1.38");
    assertEquals(hm.js.toolchain("bun").install.cmd, "curl -fsSL https://bun.sh/install | bash");
    assertEquals(hm.js.toolchain("bun").env, { BUN_INSTALL: "/usr/local/bun", PATH: `/usr/local/bun/bin:${SYSTEM_PATH}` });
    const deno = hm.js.project(".", { runtime: "deno", version: "2.1.4" });
    assert(deno.start.parent?.cmd?.includes("releases/download/v2.1.4/deno-$(uname -m)-unknown-linux-gnu.zip") === true);
    assertEquals(deno.run("check").cmd, "deno task check");
    assertEquals(deno.defaults().map((s) => s.label), ["deno test"]);
    // An empty version means the default, as in Python.
    assertEquals(hm.js.toolchain("node", "").install.label, "node 22");
  },

  "js rejects bad runtimes, managers and scripts": () => {
    assertThrows(() => hm.js.project(".", { runtime: "python" as never }), "unknown JavaScript runtime `python` (use one of node, bun, deno)");
    assertThrows(() => hm.js.project(".", { runtime: "bun", packageManager: "npm" }), "package manager `npm` does not go with bun (use bun)");
    assertThrows(() => hm.js.project().run("test; rm -rf /"), "a script name must be a single word");
    assertThrows(() => hm.js.project().run(""), "a script name must be a single word");
    assertThrows(() => hm.js.toolchain("node", "22 && evil"), "node version must be a plain version string");
  },

  "versions must be plain": () => {
    assertThrows(() => hm.rust.toolchain("1.83; curl evil"), "Rust version must be a plain version string");
    assertThrows(() => hm.go.toolchain("$(x)"), "Go version must be a plain version string");
    assertThrows(() => hm.zig.toolchain(""), "Zig version must be a plain version string");
    assertThrows(() => hm.elixir.project(".", { version: "1 2" }), "Elixir version must be a plain version string");
    assertThrows(() => hm.py.uv.project(".", { python: "3|4" }), "Python version must be a plain version string");
    assertThrows(() => hm.rust.toolchain(null as never), "Rust version must be a plain version string");
  },

  "zig downloads follow the release naming": () => {
    const cases: Array<[string, string]> = [
      ["0.14.1", "zig-$(uname -m)-linux-0.14.1"],
      ["0.15.0", "zig-$(uname -m)-linux-0.15.0"],
      ["0.13.0", "zig-linux-$(uname -m)-0.13.0"],
      ["0.14.0", "zig-linux-$(uname -m)-0.14.0"],
      ["0.14", "zig-linux-$(uname -m)-0.14"],
      ["0.14.1.0", "zig-$(uname -m)-linux-0.14.1.0"],
      ["1", "zig-$(uname -m)-linux-1"],
      ["0.15.0-dev.1+abc", "zig-$(uname -m)-linux-0.15.0-dev.1+abc"],
      ["0.1_3.0", "zig-linux-$(uname -m)-0.1_3.0"],
    ];
    for (const [version, archive] of cases) {
      hm.__reset();
      const install = hm.zig.toolchain(version).install;
      assert(install.cmd?.includes(`https://ziglang.org/download/${version}/${archive}.tar.xz`) === true, `${version}: ${install.cmd}`);
    }
  },

  "aptBase's IR": () => {
    hm.__reset();
    assertEquals(render(hm.aptBase(["git", "curl", "git"])).nodes[0]?.step, {
      key: "apt-base",
      cmd: "apt-get update && apt-get install -y --no-install-recommends curl git && rm -rf /var/lib/apt/lists/*",
      label: "apt base",
      image: "ubuntu:24.04",
      cache: { policy: "ttl", duration_seconds: 86400 },
    });
    hm.__reset();
    assertEquals(render(hm.aptBase([])).nodes[0]?.step.cmd, "apt-get update && rm -rf /var/lib/apt/lists/*");
  },

  "the same packages give the same step": () => {
    hm.__reset();
    const first = hm.aptBase(["curl", "git"]);
    assert(hm.aptBase(["git", "curl"]) === first);
    assert(hm.aptBase("git curl") === first);
    assert(hm.aptBase(["curl", "git"], { image: "debian:12" }) !== first);
    assert(hm.aptBase(["curl"]) !== first);
    hm.__reset();
    assert(hm.aptBase(["curl", "git"]) !== first, "reset forgets apt bases");
  },

  "aptBase's image": () => {
    hm.__reset();
    assertEquals(render(hm.aptBase(["curl"], { image: "debian:12" })).nodes[0]?.step.image, "debian:12");
  },

  "bad apt packages": () => {
    assertThrows(() => hm.aptBase(["-y"]), "apt package names must be non-empty strings");
    assertThrows(() => hm.aptBase([""]), "apt package names must be non-empty strings");
    assertThrows(() => hm.aptBase(3 as never), "packages must be a list of apt package names");
  },

  "presets share one base node": () => {
    hm.__reset();
    const base = hm.aptBase(["build-essential", "ca-certificates", "curl", "git"]);
    const definition = render([hm.go.project(".", { base }), hm.rust.project("tools", { base }), base.sh("make", { key: "make" })]);
    const aptNodes = definition.nodes.filter((n) => n.step.label === "apt base");
    assertEquals(aptNodes.length, 1);
    const children = Object.entries(parents(definition))
      .filter(([, parent]) => parent === aptNodes[0]!.step.key)
      .map(([child]) => child)
      .sort();
    assertEquals(children, ["go-1-23-4", "make", "rust-stable"]);
  },

  "presets with the same packages share it without asking": () => {
    hm.__reset();
    const nodes = render(() => [hm.rust.project("a"), hm.rust.project("b")]).nodes;
    assertEquals(nodes.filter((n) => n.step.label === "apt base").length, 1);
  },

  "extra packages join the base": () => {
    hm.__reset();
    assertEquals(
      nodesByKey(render(hm.go.project(".", { packages: ["protobuf-compiler"] })))["apt-base"]?.step.cmd,
      "apt-get update && apt-get install -y --no-install-recommends build-essential ca-certificates curl git protobuf-compiler && rm -rf /var/lib/apt/lists/*",
    );
  },

  "a base that is not a step": () => {
    assertThrows(() => hm.go.project(".", { base: "ubuntu" as never }), "base must be a step such as aptBase([...])");
  },

  "a setup step runs in the project with its env": () => {
    hm.__reset();
    const project = hm.go.project("svc").setup("go generate ./...", { label: "generate", env: { GOFLAGS: "-mod=mod" } });
    const definition = render(project.test());
    const steps = Object.fromEntries(definition.nodes.map((n) => [n.step.key, n.step]));
    assertEquals(steps.generate, {
      key: "generate",
      cmd: "cd svc && go generate ./...",
      label: "generate",
      env: { GOPATH: "/root/go", PATH: `/usr/local/go/bin:/root/go/bin:${SYSTEM_PATH}`, GOFLAGS: "-mod=mod" },
    });
    assertEquals(parents(definition)["go-test"], "generate");
    assertEquals(parents(definition)["generate"], "go-mod-download");
  },

  "setup keeps the project's kind and leaves the original alone": () => {
    hm.__reset();
    const project = hm.js.project(".", { packageManager: "pnpm" });
    const prepared = project.setup("pnpm build", { cache: hm.forever() });
    assert(prepared instanceof toolchains.JsProject && prepared !== project);
    assert(prepared.install() === project.install(), "install() is still the dependency step");
    assertEquals(prepared.run("test").parent?.cmd, "pnpm build");
    assertEquals(project.run("test").parent?.cmd, "pnpm install --frozen-lockfile");
    assertEquals(prepared.start.cache?.toIr(), { policy: "forever" });
  },

  "action: the label defaults to the command, env merges over the preset's": () => {
    hm.__reset();
    const project = hm.zig.project("lib");
    const step = project.action("zig build run", { env: { ZIG_GLOBAL_CACHE_DIR: "/tmp/zig", EXTRA: "1" } });
    assertEquals(step.cmd, "cd lib && zig build run");
    assertEquals(step.label, "zig build run");
    assertEquals(step.env, { ZIG_GLOBAL_CACHE_DIR: "/tmp/zig", PATH: `/usr/local/zig:${SYSTEM_PATH}`, EXTRA: "1" });
    assertEquals(project.action("zig build run", { label: "run" }).label, "run");
    assertEquals(project.action("x", { label: "" }).label, "x");
  },

  "a project's path": () => {
    hm.__reset();
    assertEquals(hm.go.project("./").start.cmd, "go mod download");
    assertEquals(hm.go.project("./").start.cache?.toIr(), { policy: "on_change", paths: ["go.sum"] });
    assertEquals(hm.go.project("svc//").start.cache?.toIr(), { policy: "on_change", paths: ["svc/go.sum"] });
    assertThrows(() => hm.go.project(""), "cwd must be a non-empty path");
    assertThrows(() => hm.go.project(3 as never), "a project's path must be a non-empty string");
    assertThrows(() => new hm.Project(hm.sh("x"), "", {}), "a project's path must be a non-empty string");
  },

  "a project without defaults": () => {
    assertThrows(() => render(new hm.Project(hm.sh("x"), ".", {})), "this project has no default actions");
  },
};
