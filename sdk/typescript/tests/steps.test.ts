/** Steps: roots, children, forks, waits, timeouts and what their options accept. */

import { forever, pipeline, scratch, sh, Step, timeout, wait } from "@harmont/hm";
import { assert, assertEquals, assertSame, assertThrows } from "./assert.ts";

export const tests: Record<string, () => void> = {
  "scratch is an empty root"() {
    const root = scratch();
    assert(root instanceof Step);
    assertEquals([root._cmd, root._parent, root._isWait, root._image], [null, null, false, undefined]);
    assertEquals(scratch({ image: "alpine:3.20" })._image, "alpine:3.20");
  },

  "sh is a command on its own scratch root"() {
    const step = sh("echo hi");
    assertEquals(step._cmd, "echo hi");
    assert(step._parent !== null && step._parent._cmd === null && step._parent._parent === null);
    assert(sh("a")._parent !== sh("b")._parent, "each root has its own scratch");
  },

  "options land in the step's fields"() {
    const cache = forever();
    const env = { CI: "1" };
    const args = { cpus: 2 };
    const step = sh("make", { label: "build", cache, env, image: "debian:12", runner: "vm", runnerArgs: args, key: "k" });
    assertSame(step._cache, cache);
    assertEquals(step._env, env);
    assertEquals(step._runnerArgs, args);
    assertEquals(
      [step._label, step._image, step._runner, step._keyOverride, step._timeoutSeconds, step._isWait, step._continueOnFailure],
      ["build", "debian:12", "vm", "k", undefined, false, false],
    );
  },

  "env and runnerArgs changed after the call change no step, as in Harmont (whose IR is made at pipeline())"() {
    const env: Record<string, string> = { A: "1" };
    const args: Record<string, unknown> = { nested: { cpus: 2 } };
    const step = sh("make", { env, runnerArgs: args });
    const ir = pipeline([step]);
    env.A = "2";
    (args.nested as Record<string, unknown>).cpus = 4;
    const node = ir.graph.nodes[0];
    assertEquals(node.env.A, "1");
    assertEquals(node.step.runner_args, { nested: { cpus: 2 } });
    assertEquals(step._env, { A: "1" });
  },

  "every field is an own property, as in Harmont's steps"() {
    assertEquals(Object.keys(sh("x")), [
      "_id",
      "_cmd",
      "_parent",
      "_isWait",
      "_continueOnFailure",
      "_label",
      "_cache",
      "_env",
      "_timeoutSeconds",
      "_image",
      "_runner",
      "_runnerArgs",
      "_keyOverride",
    ]);
  },

  "every step has its own id"() {
    const ids = new Set([sh("a")._id, sh("a")._id, scratch()._id, wait()._id]);
    assertEquals(ids.size, 4);
  },

  "cwd runs the command in a directory, and must not be empty"() {
    assertEquals(sh("npm test", { cwd: "web" })._cmd, "cd web && npm test");
    assertEquals(sh("a").sh("b", { cwd: "x y" })._cmd, "cd x y && b");
    assertThrows(() => sh("echo", { cwd: "" }), "hm: cwd must be a non-empty path");
    assertThrows(() => sh("a").sh("echo", { cwd: "" }), "cwd must be a non-empty path");
  },

  "a child's parent is the step it was made on"() {
    const parent = sh("install");
    const child = parent.sh("build");
    assertSame(child._parent, parent);
    assertEquals(child._cmd, "build");
  },

  "the first command on a scratch root takes its image, later ones do not"() {
    const first = scratch({ image: "alpine:3.20" }).sh("a");
    assertEquals(first._image, "alpine:3.20");
    assertEquals(first.sh("b")._image, undefined);
    assertEquals(scratch({ image: "alpine:3.20" }).sh("a", { image: "debian:12" })._image, "debian:12");
    assertEquals(sh("a", { image: "x" }).sh("b", { image: "y" })._image, "y");
  },

  "a fork is a step of its own that runs nothing"() {
    const base = sh("install");
    const branch = base.fork({ label: "tests" });
    assertEquals([branch._cmd, branch._label, branch._isWait], [null, "tests", false]);
    assertSame(branch._parent, base);
    assertEquals(base.fork()._label, undefined);
    assert(base.fork() !== base.fork());
    assertSame(branch.sh("x")._parent, branch);
    // A fork carries no image over: only a scratch root's does.
    assertEquals(scratch({ image: "i" }).fork().sh("x")._image, undefined);
  },

  "wait is a barrier, lenient with continueOnFailure"() {
    const barrier = wait();
    assertEquals([barrier._isWait, barrier._continueOnFailure, barrier._cmd, barrier._parent], [true, false, null, null]);
    assertEquals(wait({ continueOnFailure: true })._continueOnFailure, true);
    assertEquals(wait({})._continueOnFailure, false);
  },

  "timeout gives a copy of the step a limit"() {
    const base = sh("x", { label: "l" });
    const limited = timeout("1h30m", base);
    assertEquals([limited._timeoutSeconds, limited._cmd, limited._label], [5400, "x", "l"]);
    assertSame(limited._parent, base._parent);
    assertEquals(base._timeoutSeconds, undefined);
    assertEquals(timeout(45, limited)._timeoutSeconds, 45);
    assert(limited._id !== base._id);
  },

  "timeout needs a command step and a positive duration"() {
    assertThrows(() => timeout("30s", wait()), "cannot wrap a wait() barrier");
    assertThrows(() => timeout("30s", "make" as unknown as Step), "timeout: the second argument must be a step", TypeError);
    assertThrows(() => timeout("0s", sh("x")), "must be positive");
    assertThrows(() => timeout("1d", sh("x")), "invalid timeout duration");
  },

  "unknown options are named"() {
    const err = assertThrows(() => sh("x", { lable: "y" } as never), "sh: unknown option `lable`", TypeError);
    assert(err.message.includes("options: label, cache, env, image, runner, runnerArgs, key, cwd"), err.message);
    assertThrows(() => sh("a").sh("x", { labels: "y" } as never), "step.sh: unknown option `labels`");
    assertThrows(() => scratch({ img: "x" } as never), "scratch: unknown option `img`");
    assertThrows(() => sh("a").fork({ name: "x" } as never), "fork: unknown option `name`");
    assertThrows(() => wait({ continue_on_failure: true } as never), "wait: unknown option `continue_on_failure`");
  },

  "option values of the wrong type are named"() {
    assertThrows(() => sh(42 as never), "sh: the command must be a string, not 42", TypeError);
    assertThrows(() => sh("x", { label: 1 } as never), "sh: label must be a string, not 1");
    assertThrows(() => sh("x", { env: { N: 1 } } as never), "sh: env: the value of N must be a string, not 1");
    assertThrows(() => sh("x", { env: ["A=1"] } as never), "sh: env must be an object");
    assertThrows(() => sh("x", { cache: "forever" } as never), "sh: cache must be a policy");
    assertThrows(() => sh("x", { runnerArgs: "fast" } as never), "sh: runnerArgs must be an object");
    assertThrows(() => sh("x", "label" as never), "sh: options must be an object, not \"label\"");
    assertThrows(() => sh("a").fork("label" as never), "fork: options must be an object");
    assertThrows(() => wait({ continueOnFailure: "yes" } as never), "continueOnFailure must be true or false");
  },

  "absent options are null or undefined alike"() {
    const step = sh("x", { label: undefined, cache: undefined, env: undefined, cwd: undefined });
    assertEquals([step._cmd, step._label], ["x", undefined]);
    assertEquals(sh("x", null as never)._cmd, "x");
  },
};
