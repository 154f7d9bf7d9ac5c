/** JavaScript: js.project() with its runtimes and package managers, and what it reads from a project. */

import { forever, sh, timeout } from "@harmont/hm";
import { js, JsProject, ts } from "@harmont/hm/toolchains";
import { detect, detectFromLockfiles, detectFromPackageJson } from "@harmont/hm/src/toolchains/detect.ts";
import { assert, assertEquals, assertSame, assertThrows } from "./assert.ts";
import { chain } from "./helpers.ts";

const FIXTURES = "tests/fixtures/js";
const NODE_22 = "curl -fsSL https://deb.nodesource.com/setup_22.x | bash - && apt-get install -y nodejs";
const BUN = "curl -fsSL https://bun.sh/install | BUN_INSTALL=/usr/local bash";
const DENO = "curl -fsSL https://deno.land/install.sh | sh && ln -sf $HOME/.deno/bin/deno /usr/local/bin/deno";

/** The commands of a project's install chain, root first. */
const installChain = (project: JsProject) => chain(project.install());

export const tests: Record<string, () => void> = {
  "node and npm by default"() {
    const project = js.project({ path: `${FIXTURES}/empty` });
    assert(project instanceof JsProject);
    assertEquals(installChain(project), [
      null,
      "apt-get update && apt-get install -y curl ca-certificates",
      NODE_22,
      `cd ${FIXTURES}/empty && npm ci`,
    ]);
    const deps = project.install();
    assertEquals([deps._label, deps._cache], [":node: deps", { kind: "on_change", paths: [`${FIXTURES}/empty/package-lock.json`] }]);
    assertEquals([deps._parent?._label, deps._parent?._parent?._label], [":node: install", ":node: apt-base"]);
    const run = project.run("test");
    assertEquals([run._label, run._cmd], [":node: test", `cd ${FIXTURES}/empty && npm run test`]);
    assertSame(run._parent, deps);
  },

  "node versions"() {
    assert(js.project({ runtime: "node", version: "20" }).install()._parent?._cmd?.includes("setup_20.x") === true);
    assert(js.project({ runtime: "node", version: "22.x" }).install()._parent?._cmd?.includes("setup_22.x") === true);
    assertThrows(() => js.project({ runtime: "node", version: "abc" }), 'js.project: invalid version "abc"\n  → use a Node major version like "22" or "22.x"');
    assertThrows(() => js.project({ runtime: "bun", version: "abc" }), 'invalid version "abc"\n  → use a semver version like "1.2" or "1.2.0"');
  },

  "pnpm and yarn come through corepack"() {
    const pnpm = js.project({ runtime: "node", pm: "pnpm" });
    assertEquals(installChain(pnpm).slice(2), [NODE_22, "corepack enable pnpm", "cd . && pnpm install --frozen-lockfile"]);
    assertEquals([pnpm.install()._parent?._label, pnpm.install()._parent?._cache], [":node: pnpm", { kind: "forever", envKeys: [] }]);
    assertEquals(pnpm.run("lint")._cmd, "cd . && pnpm run lint");
    const classic = js.project({ pm: "yarn-classic" });
    assertEquals(installChain(classic).slice(3), ["corepack enable", "cd . && yarn install --frozen-lockfile"]);
    assertEquals(classic.install()._cache, { kind: "on_change", paths: ["./yarn.lock"] });
    const berry = js.project({ pm: "yarn-berry" });
    assertEquals(installChain(berry).slice(3), ["corepack enable", "cd . && yarn install --immutable"]);
    assertEquals(berry.run("test")._cmd, "cd . && yarn run test");
  },

  "bun as runtime, or as a package manager on node"() {
    const bun = js.project({ runtime: "bun" });
    assertEquals(installChain(bun), [null, "apt-get update && apt-get install -y curl ca-certificates unzip", BUN, "cd . && bun install --frozen-lockfile"]);
    assertEquals([bun.run("build")._label, bun.run("build")._cmd], [":bun: build", "cd . && bun run build"]);
    assertEquals(bun.install()._cache, { kind: "on_change", paths: ["./bun.lock"] });
    assert(js.project({ runtime: "bun", version: "1.2.3" }).install()._parent?._cmd?.endsWith(' -s "bun-v1.2.3"') === true);
    const onNode = js.project({ runtime: "node", pm: "bun" });
    assertEquals(installChain(onNode).slice(1), [
      "apt-get update && apt-get install -y curl ca-certificates unzip",
      NODE_22,
      BUN,
      "cd . && bun install --frozen-lockfile",
    ]);
    assertEquals(onNode.install()._parent?._label, ":node: bun");
  },

  "deno manages its own dependencies"() {
    const deno = js.project({ runtime: "deno" });
    assertEquals(installChain(deno), [null, "apt-get update && apt-get install -y curl ca-certificates unzip", DENO, "cd . && deno install"]);
    assertEquals([deno.install()._label, deno.install()._cache], [":deno: deps", { kind: "on_change", paths: ["./deno.lock"] }]);
    assertEquals([deno.run("fmt")._label, deno.run("fmt")._cmd], [":deno: fmt", "cd . && deno task fmt"]);
    assert(js.project({ runtime: "deno", version: "2.0.0" }).install()._parent?._cmd?.includes('sh -s "v2.0.0" && ln') === true);
  },

  "runtime and package manager must go together"() {
    assertThrows(() => js.project({ pm: "npm", runtime: "bun" }), 'js.project: runtime="bun" only supports pm="bun"');
    assertThrows(() => js.project({ pm: "yarn-berry", runtime: "bun" }), 'runtime="bun" only supports pm="bun"');
    assertThrows(() => js.project({ pm: "npm", runtime: "deno" }), 'runtime="deno" manages its own dependencies — do not set pm');
    assertThrows(() => js.project({ pm: "deno", runtime: "node" }), 'js.project: pm="deno" is not valid — use runtime="deno" instead');
    assertThrows(() => js.project({ runtime: "nodejs" } as never), 'js.project: runtime must be "node", "bun" or "deno", not "nodejs"');
    assertThrows(() => js.project({ pm: "yarn" } as never), "js.project: pm must be one of");
    assertThrows(() => js.project({ packageManager: "pnpm" } as never), "js.project: unknown option `packageManager`");
  },

  "without runtime and pm, the project says"() {
    const install = (dir: string) => js.project({ path: `${FIXTURES}/${dir}` }).install();
    assert(install("pnpm")._cmd?.endsWith("pnpm install --frozen-lockfile") === true);
    assertEquals(install("bun")._parent?._cmd, BUN);
    assertEquals(install("bun-engines")._parent?._cmd, BUN);
    assert(install("deno")._cmd?.endsWith("deno install") === true);
    assert(install("yarn-berry")._cmd?.endsWith("yarn install --immutable") === true);
    assert(install("yarn-classic")._cmd?.endsWith("yarn install --frozen-lockfile") === true);
    assert(install("npm")._cmd?.endsWith("npm ci") === true);
    assert(install("missing-directory")._cmd?.endsWith("npm ci") === true);
    // Either option given: nothing is read.
    assert(js.project({ path: `${FIXTURES}/bun`, runtime: "node" }).install()._cmd?.endsWith("npm ci") === true);
    assert(js.project({ path: `${FIXTURES}/bun`, pm: "pnpm" }).install()._cmd?.endsWith("pnpm install --frozen-lockfile") === true);
  },

  "a pinned package manager is installed at its version, cached on package.json"() {
    const pinned = js.project({ path: `${FIXTURES}/pnpm-pinned` }).install()._parent;
    assertEquals([pinned?._cmd, pinned?._cache], [
      "corepack enable pnpm && corepack install -g pnpm@10.33.0",
      { kind: "on_change", paths: [`${FIXTURES}/pnpm-pinned/package.json`] },
    ]);
    assertEquals(
      js.project({ path: `${FIXTURES}/yarn-berry` }).install()._parent?._cmd,
      "corepack enable yarn && corepack install -g yarn@4.5.0",
    );
    assertEquals(js.project({ path: `${FIXTURES}/pnpm` }).install()._parent?._cache, forever());
  },

  "detect: package.json, then lock files"() {
    assertEquals(detectFromPackageJson({}), {});
    assertEquals(detectFromPackageJson({ engines: { node: ">=18" } }), { runtime: "node" });
    assertEquals(detectFromPackageJson({ engines: { bun: ">=1" }, packageManager: "pnpm@8" }), { runtime: "bun", pm: "bun" });
    assertEquals(detectFromPackageJson({ engines: { deno: "2" } }), { runtime: "deno" });
    assertEquals(detectFromPackageJson({ packageManager: "yarn@1.22.22" }), { pm: "yarn-classic", pmVersion: "1.22.22" });
    assertEquals(detectFromPackageJson({ packageManager: "yarn@4.0.0" }), { pm: "yarn-berry", pmVersion: "4.0.0" });
    assertEquals(detectFromPackageJson({ packageManager: "pnpm" }), { pm: "pnpm" });
    assertEquals(detectFromPackageJson({ engines: { node: "1" }, packageManager: "npm@10.2.4" }), { runtime: "node", pm: "npm", pmVersion: "10.2.4" });
    assertEquals(detectFromLockfiles(["package-lock.json", "bun.lockb"]), { pm: "bun", runtime: "bun" });
    assertEquals(detectFromLockfiles(["yarn.lock"]), { pm: "yarn-classic" });
    assertEquals(detectFromLockfiles(["deno.lock"]), { runtime: "deno" });
    assertEquals(detectFromLockfiles([]), {});
    assertEquals(detect(`${FIXTURES}/node-engines-pnpm`), { runtime: "node", pm: "pnpm" });
    assertEquals(detect(`${FIXTURES}/empty`), {});
    assertEquals(detect(`${FIXTURES}/nowhere`), {});
  },

  "run takes step options; ts is js; setup adds a step"() {
    const step = timeout(300, js.project({ runtime: "node" }).run("test", { label: "my test", env: { CI: "1" } }));
    assertEquals([step._label, step._timeoutSeconds, step._env], ["my test", 300, { CI: "1" }]);
    assertSame(ts, js);
    const project = js.project({ runtime: "node", image: "node:22", base: undefined }).setup("npm run codegen");
    assertEquals(project.run("build")._parent?._cmd, "npm run codegen");
    assertEquals(installChain(project)[0], null);
    assertEquals(project.install()._parent?._parent?._parent?._parent?._image, "node:22");
    const base = sh("custom");
    assertSame(js.project({ runtime: "node", base }).install()._parent?._parent, base);
    assertThrows(() => js.project().run("x", { cwd: 1 } as never), "js.run: cwd must be a string");
  },
};
