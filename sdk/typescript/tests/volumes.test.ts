/** Cache volumes (an addition of hm's): `volume()`, the `volumes` option of steps and pipelines, and their IR, written only when given. */

import { pipeline, scratch, sh, Volume, volume, wait } from "@harmont/hm";
import { rust } from "@harmont/hm/toolchains";
import { assert, assertEquals, assertThrows } from "./assert.ts";
import { graphOf, stepsByKey } from "./helpers.ts";

export const tests: Record<string, () => void> = {
  "volume() is a name and a sharing, shared by default"() {
    const shared = volume("cargo-registry");
    assert(shared instanceof Volume);
    assertEquals([shared.name, shared.sharing], ["cargo-registry", "shared"]);
    const locked = volume("cargo-target", { sharing: "locked" });
    assertEquals([locked.name, locked.sharing], ["cargo-target", "locked"]);
    assertEquals(volume("p", { sharing: "private" }).sharing, "private");
    assertEquals(volume("s", { sharing: "shared" }).sharing, "shared");
    assert(Object.isFrozen(locked), "a volume does not change");
  },

  "a volume renders short when shared, else as an object"() {
    assertEquals(volume("npm").toJSON(), "npm");
    assertEquals(volume("t", { sharing: "locked" }).toJSON(), { name: "t", sharing: "locked" });
    assertEquals(JSON.parse(JSON.stringify(volume("t", { sharing: "private" }))), { name: "t", sharing: "private" });
  },

  "an unknown sharing is refused naming the allowed values"() {
    const err = assertThrows(() => volume("t", { sharing: "exclusive" } as never), 'volume: invalid sharing "exclusive"', TypeError);
    assert(err.message.includes('use "shared" (the default), "locked" or "private"'), err.message);
    assertThrows(() => volume("t", { sharing: "Locked" } as never), 'invalid sharing "Locked"', TypeError);
    assertThrows(() => volume("t", { sharing: 1 } as never), "invalid sharing 1", TypeError);
    assertThrows(() => volume("t", { mode: "locked" } as never), "volume: unknown option `mode` (options: sharing)", TypeError);
    assertThrows(() => volume(7 as never), "volume: the name must be a string, not 7", TypeError);
    assertThrows(() => volume("t", "locked" as never), 'volume: options must be an object, not "locked"', TypeError);
  },

  "every sh takes volumes, kept in the IR's form"() {
    const volumes = { "/root/.cargo/registry": "cargo-registry", target: volume("cargo-target", { sharing: "locked" }) };
    const ir = { "/root/.cargo/registry": "cargo-registry", target: { name: "cargo-target", sharing: "locked" } };
    assertEquals(sh("cargo build", { volumes })._volumes, ir);
    assertEquals(scratch().sh("cargo build", { volumes })._volumes, ir);
    assertEquals(sh("a").sh("cargo build", { volumes, runner: "vm", runnerArgs: { cpus: 2 } })._volumes, ir);
    assertEquals("_volumes" in sh("a"), false, "a step without volumes has no such property, as in Harmont");
  },

  "volumes changed after the call change no step"() {
    const volumes: Record<string, string> = { target: "cargo-target" };
    const step = sh("cargo build", { label: "build", volumes });
    volumes.target = "other";
    volumes.extra = "x";
    assertEquals(stepsByKey(graphOf([step])).build?.volumes, { target: "cargo-target" });
  },

  "volumes of the wrong type are refused where they are written"() {
    const cases: Array<[unknown, string]> = [
      [["target"], "volumes must be an object of mount paths to volume names, not an array"],
      ["cargo-target", 'volumes must be an object of mount paths to volume names, not "cargo-target"'],
      [volume("t"), "volumes must be an object of mount paths to volume names, not a Volume"],
      [{ target: 3 }, 'the volume at "target" must be a name or volume(...), not 3'],
      [{ target: { name: "t", sharing: "locked" } }, 'the volume at "target" must be a name or volume(...), not an object'],
    ];
    for (const [bad, message] of cases) {
      assertThrows(() => sh("x", { volumes: bad } as never), `sh: ${message}`, TypeError);
      assertThrows(() => sh("x").sh("y", { volumes: bad } as never), `step.sh: ${message}`, TypeError);
      assertThrows(() => pipeline([sh("x")], { volumes: bad } as never), `pipeline: ${message}`, TypeError);
    }
  },

  "a step's volumes are written last, only when given"() {
    const base = sh("apt-get install -y gcc", { label: "base" });
    const build = base.sh("cargo build", {
      label: "build",
      volumes: { "/root/.cargo/registry": "cargo-registry", target: volume("cargo-target", { sharing: "locked" }) },
    });
    const test = base.sh("cargo test", { label: "test", volumes: {} });
    const ir = pipeline([build, wait({ continueOnFailure: true }), test]);
    const steps = stepsByKey(ir.graph);
    assertEquals("volumes" in (steps.base ?? {}), false);
    assertEquals(steps.build?.volumes, {
      "/root/.cargo/registry": "cargo-registry",
      target: { name: "cargo-target", sharing: "locked" },
    });
    assertEquals(Object.keys(steps.test ?? {}).slice(-2), ["continue_on_failure", "volumes"]);
    assertEquals(steps.test?.volumes, {});
    assertEquals("volumes" in ir, false);
  },

  "a pipeline's volumes are written after the network only when given"() {
    const ir = pipeline([sh("x")], { timeout: 60, network: "none", volumes: { "/cache": volume("c", { sharing: "private" }) } });
    assertEquals(ir.volumes, { "/cache": { name: "c", sharing: "private" } });
    assertEquals(Object.keys(ir), ["version", "graph", "timeout_seconds", "network", "volumes"]);
    assertEquals(JSON.parse(JSON.stringify(pipeline([sh("x")], { volumes: { "/root/.npm": "npm" } }))).volumes, {
      "/root/.npm": "npm",
    });
    assertEquals("volumes" in pipeline([sh("x")], { timeout: 60, network: "none" }), false);
  },

  "presets' actions take volumes as any step option"() {
    const project = rust.project({ path: "." });
    const build = project.build({ volumes: { target: volume("cargo-target", { sharing: "locked" }) } });
    assertEquals(build._volumes, { target: { name: "cargo-target", sharing: "locked" } });
    assertEquals("_volumes" in project.test(), false);
    assertThrows(() => project.build({ volumes: { target: 1 } } as never), 'rust.build: the volume at "target"', TypeError);
  },
};
