/** Mistakes in a definition throw a HarmontError whose message says what to fix. */

import * as hm from "@harmont/hm";
import { assert, assertEquals, assertThrows } from "./assert.ts";
import { render } from "./helpers.ts";

// Values a TypeScript user cannot write without a cast, but a JavaScript one can.
const loose = <T>(value: unknown): T => value as T;

export const tests: Record<string, () => void> = {
  "HarmontError is an Error named HarmontError": () => {
    const err = new hm.HarmontError("x");
    assert(err instanceof Error && err instanceof hm.HarmontError);
    assertEquals(err.name, "HarmontError");
    assertEquals(err.message, "x");
  },

  "a zero or negative timeout": () => {
    for (const duration of [0, "0s", "0", -5, -0.1, "0m0s"]) {
      assertThrows(() => hm.timeout(duration, hm.sh("make")), "timeout must be greater than 0");
    }
  },

  "a timeout that is not a duration": () => {
    for (const duration of ["soon", "-5s", "5 minutes", "", "1.5h", "5x"]) {
      assertThrows(() => hm.timeout(duration, hm.sh("make")), "is not a duration such as '30s', '5m' or '1h30m'");
    }
    for (const duration of [true, null, undefined, {}, [5]]) {
      assertThrows(() => hm.timeout(loose(duration), hm.sh("make")), "timeout must be a duration");
    }
    assertThrows(() => hm.timeout(Infinity, hm.sh("make")), "timeout must be a finite duration");
  },

  "a pipeline timeout must be positive": () => {
    assertThrows(() => hm.pipeline([], { timeout: 0 }), "pipeline timeout must be greater than 0");
    assertThrows(() => hm.pipeline([], { timeout: "never" }), "pipeline timeout \"never\" is not a duration");
  },

  "timeout of a scratch root or a non-step": () => {
    assertThrows(() => hm.timeout("5m", hm.scratch({ image: "alpine" })), "timeout applies to a step, not <Step scratch>");
    assertThrows(() => hm.timeout("5m", loose("make")), "timeout applies to a step");
  },

  "an empty cwd": () => {
    for (const cwd of ["", "   "]) {
      assertThrows(() => hm.sh("make", { cwd }), "cwd must be a non-empty path (leave it out to run in /workspace)");
      assertThrows(() => hm.sh("true").sh("make", { cwd }), "cwd must be a non-empty path");
      assertThrows(() => hm.scratch().sh("make", { cwd }), "cwd must be a non-empty path");
    }
    assertThrows(() => hm.sh("make", { cwd: loose(3) }), "cwd must be a non-empty path");
  },

  "a command that is not a string": () => {
    assertThrows(() => hm.sh(loose(["make"])), "a step's command must be a string");
    assertThrows(() => hm.sh("x").sh(loose(null)), "a step's command must be a string");
  },

  "push with both branch and tag, or neither": () => {
    assertThrows(() => hm.push(loose({ branch: "main", tag: "v*" })), "push takes exactly one of branch or tag");
    assertThrows(() => hm.push(loose({})), "push takes exactly one of branch or tag");
    assertThrows(() => hm.push(loose(undefined)), "push takes exactly one of branch or tag");
  },

  "push with an empty list or glob": () => {
    assertThrows(() => hm.push({ branch: [] }), "branch must be a glob or a list of globs, not []");
    assertThrows(() => hm.push({ tag: "" }), "tag must be a glob or a list of globs");
    assertThrows(() => hm.push({ branch: loose(["main", 3]) }), "branch must be a glob or a list of globs");
  },

  "pullRequest with bad branches or types": () => {
    assertThrows(() => hm.pullRequest({ branches: [] }), "branches must be a glob or a list of globs");
    assertThrows(() => hm.pullRequest({ types: [] }), "types must be pull request event types");
    assertThrows(() => hm.pr({ types: loose(null) }), "types must be pull request event types");
  },

  "onChange without paths": () => {
    assertThrows(() => hm.onChange(), "onChange needs at least one path");
    assertThrows(() => hm.onChange([]), "onChange needs at least one path");
    assertThrows(() => hm.onChange(""), "onChange paths must be non-empty strings");
    assertThrows(() => hm.onChange(loose({ envKeys: ["A"] })), "onChange paths must be non-empty strings");
  },

  "other bad policies": () => {
    assertThrows(() => hm.ttl(0), "ttl must be greater than 0");
    assertThrows(() => hm.ttl("soon"), "ttl \"soon\" is not a duration");
    assertThrows(() => hm.compose(), "compose needs at least one policy");
    assertThrows(() => hm.compose(loose("forever")), "compose takes cache policies, not \"forever\"");
    assertThrows(() => hm.forever({ envKeys: [""] }), "envKeys must be variable names");
    assertThrows(() => hm.forever(loose(["A"])), "forever takes an options object");
    assertThrows(() => hm.sh("make", { cache: loose("forever") }), "cache must be a policy such as forever()");
  },

  "duplicate explicit keys": () => {
    assertThrows(
      () => render([hm.sh("a", { key: "same" }), hm.sh("b", { key: "same" })]),
      "pipeline `ci`: two steps have the key `same`; give one of them another key",
    );
  },

  "a step listed twice after timeout is two steps": () => {
    hm.__reset();
    const step = hm.sh("a", { key: "a" });
    assertThrows(() => render([step, hm.timeout(5, step)]), "two steps have the key `a`");
  },

  "a scratch root alone": () => {
    assertThrows(() => render([hm.scratch({ image: "alpine" })]), "a scratch root runs nothing by itself; call .sh(...) on it");
  },

  "steps that are not steps": () => {
    for (const bad of [["make"], [42], [{ cmd: "make" }], [hm.pipeline([])], [hm.push({ branch: "main" })], [hm.rust.toolchain()]]) {
      hm.__reset();
      assertThrows(() => render(loose(bad)), "a pipeline returns steps, lists of steps, waits or toolchain projects, not");
    }
  },

  "env that is not a mapping of strings": () => {
    assertThrows(() => hm.sh("make", { env: loose({ A: null }) }), "env value of A must be a string, not null");
    assertThrows(() => hm.sh("make", { env: loose({ A: true }) }), "env value of A must be a string");
    assertThrows(() => hm.sh("make", { env: loose(["A=1"]) }), "env must be a mapping of names to strings");
    assertThrows(() => hm.sh("make", { env: loose("A=1") }), "env must be a mapping of names to strings");
    assertThrows(() => hm.sh("make", { env: { "": "x" } }), "env names must be non-empty strings");
    assertThrows(() => hm.pipeline([], { env: loose({ A: undefined }) }), "env value of A must be a string");
  },

  "bad labels, keys and images": () => {
    assertThrows(() => hm.sh("make", { label: loose(3) }), "label must be a string, not 3");
    assertThrows(() => hm.sh("make", { key: "" }), "key must be a non-empty string");
    assertThrows(() => hm.sh("make", { image: "" }), "image must be a non-empty string");
    assertThrows(() => hm.scratch({ image: "" }), "image must be a non-empty string");
  },

  "unknown options": () => {
    assertThrows(() => hm.sh("make", loose({ lable: "x" })), "sh has no option `lable` (options: cwd, label, cache, env, image, key, runner, runnerArgs)");
    assertThrows(() => hm.sh("x").sh("make", loose({ runner_args: {} })), "step.sh has no option `runner_args`");
    assertThrows(() => hm.wait(loose({ continue_on_failure: true })), "wait has no option `continue_on_failure`");
    assertThrows(() => hm.pipeline([], loose({ timeout_seconds: 5 })), "pipeline has no option `timeout_seconds`");
    assertThrows(() => hm.rust.project(".", loose({ versoin: "1" })), "rust.project has no option `versoin`");
    assertThrows(() => hm.sh("make", loose("label")), "sh takes an options object");
  },

  "target arguments": () => {
    hm.__reset();
    assertThrows(() => hm.target("", () => 1), "a target's name must not be empty");
    assertThrows(() => hm.target(loose(3), () => 1), "a target's name must be a string");
    assertThrows(() => hm.target("x", loose(3)), "target takes a function");
  },
};
