/** Targets: memoised factories, forgotten by clearTargetCache(). */

import { clearTargetCache, pipeline, sh, target } from "@harmont/hm";
import { assertEquals, assertSame, assertThrows } from "./assert.ts";
import { keys, parents } from "./helpers.ts";

export const tests: Record<string, () => void> = {
  "a target makes its value once"() {
    let made = 0;
    const base = target("base", () => {
      made++;
      return sh("apt-get install -y git", { label: "base" });
    });
    assertEquals(typeof base, "function");
    assertSame(base(), base());
    assertEquals(made, 1);
    clearTargetCache();
    base();
    assertEquals(made, 2);
  },

  "any value can be a target's, and targets build on targets"() {
    const config = target("config", () => ({ value: Math.random() }));
    assertSame(config().value, config().value);
    const base = target("base", () => sh("install base", { label: "base" }));
    const app = target("app", () => base().sh("install app", { label: "app" }));
    assertSame(app()._parent, base());
  },

  "two targets of one name are two targets"() {
    const a = target("same", () => sh("a"));
    const b = target("same", () => sh("b"));
    assertEquals([a()._cmd, b()._cmd], ["a", "b"]);
  },

  "a shared target is one node with several children"() {
    const base = target("node-base", () => sh("apt-get install -y nodejs", { label: "node-base" }));
    const ir = pipeline([base().sh("npm run lint", { label: "lint" }), base().sh("npm test", { label: "test" })]);
    assertEquals(keys(ir.graph), ["node-base", "lint", "test"]);
    assertEquals(parents(ir.graph), { lint: "node-base", test: "node-base" });
  },

  "a target that needs itself is named"() {
    const loop: () => unknown = target("loop", () => loop());
    assertThrows(() => loop(), 'target "loop" needs itself to be made');
    assertThrows(() => target("x", "nope" as never), "target: the second argument must be a function");
  },

  "a failed target is made again next time"() {
    let calls = 0;
    const flaky = target("flaky", () => {
      calls++;
      if (calls === 1) throw new Error("first");
      return calls;
    });
    assertThrows(() => flaky(), "first");
    assertEquals(flaky(), 2);
  },
};
