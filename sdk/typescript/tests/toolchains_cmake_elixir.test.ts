/** CMake and Elixir presets, aptBase, and setup() on every preset. */

import { aptBase, onChange, pipeline, sh, timeout } from "@harmont/hm";
import { cmake, CMakeProject, CMakeToolchain, elixir, ElixirProject, go, js, py, python, rust, zig } from "@harmont/hm/toolchains";
import { assert, assertEquals, assertSame, assertThrows } from "./assert.ts";
import { chain, cmds, keys, parents } from "./helpers.ts";

const ELIXIR_ENV = { ELIXIR_ERL_OPTIONS: "+fnu" };

export const tests: Record<string, () => void> = {
  "cmake: a toolchain, checked by its verify step"() {
    const toolchain = cmake();
    assert(toolchain instanceof CMakeToolchain);
    assertEquals([toolchain.compiler, toolchain.ccache, toolchain.generator], [undefined, true, "ninja"]);
    assertEquals(chain(toolchain.install()), [
      null,
      "apt-get update && apt-get install -y cmake build-essential pkg-config ninja-build ccache clang-format clang-tidy",
      "cmake --version && ninja --version && ccache --version",
    ]);
    assertEquals([toolchain.install()._label, toolchain.install()._parent?._label], [":cmake: verify", ":cmake: apt-base"]);
    const gcc = cmake({ compiler: "gcc-14", generator: "make", ccache: false });
    assertEquals(chain(gcc.install()).slice(1), [
      "apt-get update && apt-get install -y cmake build-essential pkg-config clang-format clang-tidy gcc-14 g++-14",
      "cmake --version && gcc-14 --version",
    ]);
    assert(cmake({ compiler: "clang" }).install()._parent?._cmd?.endsWith("clang lld") === true);
  },

  "cmake: a project is configured and built once, cached on CMakeLists.txt"() {
    const project = cmake({ path: "." });
    assert(project instanceof CMakeProject);
    const built = project.build();
    assertEquals([built._label, built._cache], [":cmake: build", { kind: "on_change", paths: ["CMakeLists.txt"] }]);
    assertEquals(
      built._cmd,
      "cd . && cmake -S . -B build -G Ninja -DCMAKE_EXPORT_COMPILE_COMMANDS=ON -DCMAKE_C_COMPILER_LAUNCHER=ccache " +
        "-DCMAKE_CXX_COMPILER_LAUNCHER=ccache && cmake --build build --parallel $(nproc)",
    );
    assertEquals(
      [project.test(), project.install(), project.lint(), project.package()].map((s) => [s._label, s._cmd]),
      [
        [":cmake: test", "cmake --build ./build --parallel $(nproc) && ctest --test-dir ./build --output-on-failure --parallel $(nproc)"],
        [":cmake: install", "cmake --install ./build"],
        [":cmake: lint", "cd . && run-clang-tidy -p build"],
        [":cmake: package", "cd ./build && cpack"],
      ],
    );
    const fmt = project.fmt();
    assertEquals(
      fmt._cmd,
      "cd . && find . -not -path './build/*' \\( -name '*.c' -o -name '*.h' -o -name '*.cpp' -o -name '*.hpp' " +
        "-o -name '*.cc' -o -name '*.cxx' \\) | xargs clang-format --dry-run --Werror",
    );
    assertSame(fmt._parent, project.toolchain.install());
    assertSame(project.test()._parent, built);
  },

  "cmake: project options"() {
    const project = cmake({
      path: "lib",
      compiler: "clang-18",
      generator: "make",
      defines: { CMAKE_BUILD_TYPE: "Release", STD: 20 as never },
      target: "app",
    });
    assertEquals(
      project.build()._cmd,
      "cd lib && cmake -S . -B build -G Unix Makefiles -DCMAKE_EXPORT_COMPILE_COMMANDS=ON -DCMAKE_C_COMPILER_LAUNCHER=ccache " +
        "-DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_C_COMPILER=clang-18 -DCMAKE_CXX_COMPILER=clang++-18 " +
        "-DCMAKE_BUILD_TYPE=Release -DSTD=20 && cmake --build build --parallel $(nproc) --target app",
    );
    assertEquals(project.build()._cache, { kind: "on_change", paths: ["lib/CMakeLists.txt"] });
    assertEquals(cmake({ path: ".", preset: "release" }).build()._cmd?.startsWith("cd . && cmake --preset release && cmake --build"), true);
    const vcpkg = cmake({ path: ".", deps: "vcpkg" }).build();
    assertEquals([vcpkg._cache, vcpkg._parent?._label, vcpkg._parent?._cache], [
      { kind: "on_change", paths: ["vcpkg.json"] },
      ":cmake: vcpkg",
      { kind: "on_change", paths: ["vcpkg.json"] },
    ]);
    assert(vcpkg._parent?._cmd?.endsWith("cd . && /opt/vcpkg/vcpkg install") === true);
    assertEquals(cmake({ path: ".", cache: onChange("x") }).build()._cache, { kind: "on_change", paths: ["x"] });
    const plain = cmake({ path: "." });
    assertEquals(plain.test({ parallel: false })._cmd?.endsWith("--output-on-failure"), true);
    assertEquals(plain.install({ prefix: "/usr" })._cmd, "cmake --install ./build --prefix /usr");
    assertEquals(plain.fmt({ fix: true })._cmd?.endsWith("xargs clang-format -i"), true);
    assertEquals(plain.package({ generator: "DEB", label: "deb" })._cmd, "cd ./build && cpack -G DEB");
    const lib = cmake().project({ path: "lib" });
    assertEquals(lib.path, "lib");
  },

  "cmake: checks"() {
    assertThrows(() => cmake({ compiler: "msvc" }), 'hm.cmake: invalid compiler "msvc"\n  → use "gcc", "gcc-14", "clang", or "clang-18"');
    assertThrows(() => cmake({ generator: "borland" as never }), 'hm.cmake: invalid generator "borland"\n  → use "ninja" or "make"');
    assertThrows(() => cmake({ path: ".", deps: "conan" as never }), 'cmake: deps must be "vcpkg" or null');
    assertThrows(() => cmake().project({ compiler: "gcc" } as never), "cmake.project: unknown option `compiler`");
    assertThrows(() => cmake({ path: "." }).test({ jobs: 4 } as never), "cmake.test: unknown option `jobs`");
  },

  "elixir: Erlang, Elixir and the dependencies, with Elixir's env"() {
    const project = elixir();
    assert(project instanceof ElixirProject);
    const deps = project.install();
    assertEquals([deps._label, deps._cmd, deps._cache, deps._env], [
      ":ex: mix-deps",
      "cd . && mix deps.get && mix deps.compile",
      { kind: "on_change", paths: ["./mix.lock"] },
      ELIXIR_ENV,
    ]);
    const install = deps._parent;
    assertEquals([install?._label, install?._parent?._label, install?._parent?._parent?._label], [
      ":ex: elixir-install",
      ":ex: erlang-install",
      ":ex: apt-base",
    ]);
    assert(install?._cmd?.startsWith("curl -fsSL https://github.com/elixir-lang/elixir/releases/download/v1.18.3/elixir-otp-27.zip") === true);
    assert(install?._parent?._cmd?.includes("esl-erlang_27.3.3-1~debian~bookworm_amd64.deb") === true);
    assertEquals(
      [project.compile(), project.test(), project.format(), project.credo(), project.sobelow(), project.depsAudit(), project.hexAudit(), project.release()].map(
        (s) => [s._label, s._cmd, s._env],
      ),
      [
        [":ex: compile", "cd . && mix compile --warnings-as-errors", ELIXIR_ENV],
        [":ex: test", "cd . && mix test", ELIXIR_ENV],
        [":ex: format", "cd . && mix format --check-formatted", ELIXIR_ENV],
        [":ex: credo", "cd . && mix credo --strict", ELIXIR_ENV],
        [":ex: sobelow", "cd . && mix sobelow --exit", ELIXIR_ENV],
        [":ex: deps-audit", "cd . && mix deps.audit", ELIXIR_ENV],
        [":ex: hex-audit", "cd . && mix hex.audit", ELIXIR_ENV],
        [":ex: release", "cd . && MIX_ENV=prod mix release", ELIXIR_ENV],
      ],
    );
  },

  "elixir: dialyzer builds on one cached PLT per project"() {
    const project = elixir({ path: "apps/api" });
    const plt = project.plt();
    assertEquals([plt._label, plt._cmd, plt._cache], [":ex: plt", "cd apps/api && mix dialyzer --plt", { kind: "on_change", paths: ["apps/api/mix.lock"] }]);
    assertSame(project.plt(), plt);
    const dialyzer = project.dialyzer();
    assertEquals([dialyzer._label, dialyzer._cmd], [":ex: dialyzer", "cd apps/api && mix dialyzer"]);
    assertSame(dialyzer._parent, plt);
  },

  "elixir: options"() {
    const project = elixir({ elixirVersion: "1.17.0", otpVersion: "26" });
    assert(project.install()._parent?._cmd?.includes("v1.17.0/elixir-otp-26.zip") === true);
    assertEquals(project.test({ cover: true, partitions: 4 })._cmd, "cd . && mix test --cover --partitions 4");
    assertEquals(project.credo({ strict: false })._cmd, "cd . && mix credo");
    assertEquals(project.release({ mixEnv: "staging" })._cmd, "cd . && MIX_ENV=staging mix release");
    assertEquals([project.mix("assets.deploy")._label, project.mix("assets.deploy")._cmd], [":ex: assets.deploy", "cd . && mix assets.deploy"]);
    assertEquals(project.compile({ env: { MIX_ENV: "test" } })._env, { ELIXIR_ERL_OPTIONS: "+fnu", MIX_ENV: "test" });
    const step = timeout(600, project.test({ label: "my test" }));
    assertEquals([step._label, step._timeoutSeconds], ["my test", 600]);
    assertEquals(elixir({ image: "debian:12" }).install()._parent?._parent?._parent?._parent?._image, "debian:12");
    const base = sh("custom base");
    assertSame(elixir({ base }).install()._parent?._parent?._parent, base);
    assertThrows(() => elixir({ elixirVersion: "abc" }), 'hm.elixir: invalid elixir version "abc"');
    assertThrows(() => elixir({ otpVersion: "xyz" }), 'hm.elixir: invalid otp version "xyz"');
    assertThrows(() => elixir({ version: "1.18.3" } as never), "elixir: unknown option `version`");
  },

  "aptBase: one shared apt step, cached for a day"() {
    const base = aptBase({ packages: ["curl", "ca-certificates", "build-essential", "pkg-config", "libssl-dev", "python3", "python3-venv"] });
    assertEquals([base._label, base._cache], [":apt: base", { kind: "ttl", durationSeconds: 86400, envKeys: [] }]);
    assertEquals(aptBase({ packages: ["curl"], label: ":lock: deps", image: "debian:12" })._label, ":lock: deps");
    assertEquals(aptBase({ packages: ["curl"], image: "debian:12" })._image, "debian:12");
    const graph = pipeline([rust.toolchain({ base }).build(), py.uv({ path: "py", base }).test()]).graph;
    assertEquals(cmds(graph).filter((c) => c.includes("apt-get install")).length, 1);
    assertEquals(parents(graph).rustup, "base");
    assertThrows(() => aptBase({} as never), "aptBase: packages is required");
  },

  "setup() on every preset adds a step its actions build on"() {
    const presets: Array<[string, () => { setup(cmd: string): { install(): unknown } }]> = [
      ["elixir", () => elixir()],
      ["python", () => python()],
      ["go", () => go()],
      ["js", () => js.project({ runtime: "node" })],
      ["zig project", () => zig({ path: "." })],
      ["zig toolchain", () => zig()],
      ["rust toolchain", () => rust.toolchain()],
      ["cmake toolchain", () => cmake()],
    ];
    for (const [name, make] of presets) {
      const before = make();
      const after = before.setup("echo __MARK__");
      assert((after as unknown) !== before, name);
      const graph = pipeline([after.install() as never]).graph;
      assertEquals(cmds(graph).at(-1), "echo __MARK__", name);
    }
    const chained = elixir().setup("echo one").setup("echo two");
    assertEquals(keys(pipeline([chained.compile()]).graph).length, 7);
  },
};
