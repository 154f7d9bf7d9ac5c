/** Cache policies: plain objects, as a literal may be written. */

import { compose, forever, onChange, sh, ttl } from "@harmont/hm";
import type { CachePolicy } from "@harmont/hm";
import { assertEquals, assertThrows } from "./assert.ts";
import { graphOf } from "./helpers.ts";

export const tests: Record<string, () => void> = {
  "the factories make plain objects"() {
    assertEquals(forever(), { kind: "forever", envKeys: [] });
    assertEquals(forever({ envKeys: ["NODE_ENV"] }), { kind: "forever", envKeys: ["NODE_ENV"] });
    assertEquals(ttl(3600), { kind: "ttl", durationSeconds: 3600, envKeys: [] });
    assertEquals(ttl(86400, { envKeys: ["CI"] }).envKeys, ["CI"]);
    assertEquals(onChange("src/", "package.json"), { kind: "on_change", paths: ["src/", "package.json"] });
    const both = compose(ttl(86400), onChange("src/"));
    assertEquals([both.kind, both.policies.map((p) => p.kind)], ["compose", ["ttl", "on_change"]]);
    assertEquals(Object.getPrototypeOf(forever()), Object.prototype);
  },

  "a policy written as a literal works like a made one"() {
    const literal: CachePolicy = { kind: "on_change", paths: ["Cargo.lock"] };
    assertEquals(graphOf([sh("x", { cache: literal })]).nodes[0]?.step.cache, { policy: "on_change", paths: ["Cargo.lock"] });
  },

  "bad policies are refused where they are given"() {
    assertThrows(() => ttl("1d" as never), "ttl: the duration is a whole number of seconds greater than 0, not \"1d\"", TypeError);
    assertThrows(() => ttl(0), "greater than 0");
    assertThrows(() => ttl(1.5), "whole number");
    assertThrows(() => forever({ env_keys: [] } as never), "forever: unknown option `env_keys`");
    assertThrows(() => forever({ envKeys: "CI" } as never), "forever: envKeys must be an array of strings");
    assertThrows(() => onChange("a", 1 as never), "onChange: paths must be an array of strings, not one holding 1");
    assertThrows(() => compose(forever(), "ttl" as never), "compose: cache must be a policy");
    assertThrows(() => sh("x", { cache: { kind: "sometimes" } as never }), "sh: cache must be a policy");
    assertThrows(() => sh("x", { cache: { kind: "ttl", durationSeconds: 5 } as never }), "cache must be a policy");
  },
};
