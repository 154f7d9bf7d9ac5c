/** Go, Python (python() and py.uv()) and Zig presets. */

import { pipeline, sh, timeout } from "@harmont/hm";
import { go, GoToolchain, py, python, PythonToolchain, zig, ZigProject, ZigToolchain } from "@harmont/hm/toolchains";
import { assert, assertEquals, assertSame, assertThrows } from "./assert.ts";
import { chain, keys, parents } from "./helpers.ts";

const GO_INSTALL =
  "curl -fsSL https://go.dev/dl/go1.23.2.linux-amd64.tar.gz -o /tmp/go.tgz && rm -rf /usr/local/go && " +
  "tar -C /usr/local -xzf /tmp/go.tgz && ln -sf /usr/local/go/bin/go /usr/local/bin/go && " +
  "ln -sf /usr/local/go/bin/gofmt /usr/local/bin/gofmt && go version";

const UV_INSTALL = "curl -LsSf https://astral.sh/uv/install.sh | sh && ln -sf /root/.local/bin/uv /usr/local/bin/uv && uv --version";

export const tests: Record<string, () => void> = {
  "go: apt base, install, actions forking from the install"() {
    const project = go();
    assert(project instanceof GoToolchain);
    assertEquals(project.path, ".");
    assertEquals(chain(project.install()), [null, "apt-get update && apt-get install -y curl ca-certificates git", GO_INSTALL]);
    assertEquals(
      [project.build(), project.test(), project.vet(), project.fmt()].map((s) => [s._label, s._cmd]),
      [
        [":go: build", "cd . && go build ./..."],
        [":go: test", "cd . && go test ./..."],
        [":go: vet", "cd . && go vet ./..."],
        [":go: fmt", 'cd . && test -z "$(gofmt -l .)"'],
      ],
    );
    assertSame(project.build()._parent, project.install());
    const install = project.install();
    assertEquals([install._label, install._cache, install._parent?._label, install._parent?._cache], [
      ":go: install",
      { kind: "forever", envKeys: [] },
      ":go: apt-base",
      { kind: "ttl", durationSeconds: 86400, envKeys: [] },
    ]);
  },

  "go: path, version, image, base and step options"() {
    const project = go({ path: "cmd/server", version: "1.22" });
    assertEquals(project.path, "cmd/server");
    assert(project.install()._cmd?.includes("go1.22.linux-amd64") === true);
    assertEquals(project.test()._cmd, "cd cmd/server && go test ./...");
    assertEquals(go({ image: "debian:12" }).install()._parent?._parent?._image, "debian:12");
    const base = sh("custom base");
    assertSame(go({ base }).install()._parent, base);
    const step = timeout(300, go().test({ label: "my test", env: { GOFLAGS: "-race" } }));
    assertEquals([step._label, step._timeoutSeconds, step._env], ["my test", 300, { GOFLAGS: "-race" }]);
    assertEquals(go().build({ label: undefined })._label, undefined);
  },

  "go: checks"() {
    assertThrows(() => go({ version: "abc" }), 'hm.go: invalid version "abc"\n  → use a semver like "1.23" or "1.23.2"');
    assertThrows(() => go({ paths: "." } as never), "go: unknown option `paths`");
    assertThrows(() => go().build({ release: true } as never), "go.build: unknown option `release`");
    assertThrows(() => go({ base: "ubuntu" } as never), "go: base must be a step");
  },

  "setup adds a step the actions fork from"() {
    const project = go().setup("go generate ./...", { label: "generate" });
    assertEquals(project.install()._label, "generate");
    assertSame(project.build()._parent, project.install());
    const graph = pipeline([go().setup("echo one").setup("echo two").build()]).graph;
    assertEquals(graph.nodes.map((n) => n.step.cmd).slice(2, 4), ["echo one", "echo two"]);
  },

  "python: uv installed, the project synced, then its actions"() {
    const project = python();
    assert(project instanceof PythonToolchain);
    const sync = project.install();
    assertEquals([sync._label, sync._cmd, sync._cache], [
      ":python: uv-sync",
      "cd . && uv sync --all-extras",
      { kind: "on_change", paths: ["./uv.lock", "./pyproject.toml"] },
    ]);
    assertEquals([sync._parent?._label, sync._parent?._cmd], [":python: uv-install", UV_INSTALL]);
    assertEquals(sync._parent?._parent?._cmd, "apt-get update && apt-get install -y curl ca-certificates python3 python3-venv");
    assertEquals(
      [project.test(), project.lint(), project.fmt(), project.typecheck()].map((s) => [s._label, s._cmd]),
      [
        [":python: test", "cd . && uv run pytest"],
        [":python: lint", "cd . && uv run ruff check ."],
        [":python: fmt", "cd . && uv run ruff format --check ."],
        [":python: typecheck", "cd . && uv run ty check ."],
      ],
    );
  },

  "python: uvVersion, paths to typecheck, checks"() {
    const project = python({ path: "backend", uvVersion: "0.2.0" });
    assert(project.install()._parent?._cmd?.startsWith("UV_VERSION=0.2.0 curl") === true);
    assertEquals(project.typecheck({ paths: "src" })._cmd, "cd backend && uv run ty check src");
    assertEquals(project.typecheck({ paths: ["src", "tests"], label: "types" })._cmd, "cd backend && uv run ty check src tests");
    assertEquals(project.setup("uv run gen.py").test()._parent?._cmd, "uv run gen.py");
    assertThrows(() => python({ uvVersion: "abc" }), 'hm.python: invalid uv version "abc"');
    assertThrows(() => python({ version: "3.12" } as never), "python: unknown option `version`");
  },

  "py.uv: a uv project with more actions"() {
    const project = py.uv({ path: "svc", version: "0.4.18" });
    assert(project instanceof py.UvProject);
    assert(project.install()._parent?._cmd?.startsWith("UV_VERSION=0.4.18 ") === true);
    assertEquals(
      [project.build(), project.lockCheck(), project.publish(), project.run("flask db upgrade")].map((s) => [s._label, s._cmd]),
      [
        [":python: build", "cd svc && uv build"],
        [":python: lock-check", "cd svc && uv lock --check"],
        [":python: publish", "cd svc && uv publish"],
        [":python: flask", "cd svc && uv run flask db upgrade"],
      ],
    );
    assertEquals(py.uv().test({ label: "custom" })._label, "custom");
    assertThrows(() => py.uv({ version: "abc" }), 'py.uv: invalid version "abc"\n  → use "latest" or a semver like "0.4.18"');
  },

  "zig: a toolchain, or a project with path"() {
    const toolchain = zig();
    assert(toolchain instanceof ZigToolchain);
    const project = zig({ path: "." });
    assert(project instanceof ZigProject);
    assertEquals(
      [project.build(), project.test(), project.fmt()].map((s) => [s._label, s._cmd]),
      [
        [":zig: . build", "cd . && zig build"],
        [":zig: . test", "cd . && zig build test"],
        [":zig: . fmt", "cd . && zig fmt --check ."],
      ],
    );
    const [a, b] = [toolchain.project("lib-a"), toolchain.project("lib-b")];
    assertSame(a.install(), b.install());
    assertEquals(toolchain.project().path, ".");
    const graph = pipeline([a.build(), b.build()]).graph;
    assertEquals(keys(graph), ["apt-base", "install", "lib-a-build", "lib-b-build"]);
    assertEquals(parents(graph), { install: "apt-base", "lib-a-build": "install", "lib-b-build": "install" });
  },

  "zig: the download was renamed in 0.14.1"() {
    assert(zig({ version: "0.13.0" }).install()._cmd?.includes("/0.13.0/zig-linux-x86_64-0.13.0.tar.xz") === true);
    assert(zig({ version: "0.14.1" }).install()._cmd?.includes("/0.14.1/zig-x86_64-linux-0.14.1.tar.xz") === true);
    assert(zig({ version: "0.15.0" }).install()._cmd?.includes("zig-x86_64-linux-0.15.0") === true);
    assertThrows(() => zig({ version: "0.14" }), 'hm.zig: invalid version "0.14"');
  },

  "zig: setup on the toolchain and on a project"() {
    const project = zig().setup("zig build gen").project("x");
    assertEquals(project.build()._parent?._cmd, "zig build gen");
    assertEquals(zig({ path: "y" }).setup("prep").test()._parent?._cmd, "prep");
  },
};
