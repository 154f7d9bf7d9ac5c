/** Cache policies and their IR form. */

import * as hm from "@harmont/hm";
import type { CachePolicy } from "@harmont/hm";
import { assert, assertEquals } from "./assert.ts";
import { render } from "./helpers.ts";

/** The IR `cache` of a root step rendered with `policy`. */
function cacheOf(policy: CachePolicy | null): unknown {
  hm.__reset();
  return render(hm.sh("make", { key: "make", cache: policy })).nodes[0]?.step.cache;
}

export const tests: Record<string, () => void> = {
  "the default is no cache": () => {
    assertEquals(cacheOf(null), undefined);
  },

  "forever": () => {
    assertEquals(cacheOf(hm.forever()), { policy: "forever" });
    assertEquals(cacheOf(hm.forever({ envKeys: ["RUSTFLAGS", "CC"] })), { policy: "forever", env_keys: ["RUSTFLAGS", "CC"] });
    assertEquals(cacheOf(hm.forever({ envKeys: "CC" })), { policy: "forever", env_keys: ["CC"] });
    assertEquals(cacheOf(hm.forever({ envKeys: [] })), { policy: "forever" });
  },

  "ttl": () => {
    assertEquals(cacheOf(hm.ttl(3600)), { policy: "ttl", duration_seconds: 3600 });
    assertEquals(cacheOf(hm.ttl(90)), { policy: "ttl", duration_seconds: 90 });
    assertEquals(cacheOf(hm.ttl("1d", { envKeys: ["TZ"] })), { policy: "ttl", env_keys: ["TZ"], duration_seconds: 86400 });
    assertEquals(cacheOf(hm.ttl("1h30m")), { policy: "ttl", duration_seconds: 5400 });
    // Python's key order: env_keys before duration_seconds.
    assertEquals(Object.keys(hm.ttl("1d", { envKeys: "TZ" }).toIr()), ["policy", "env_keys", "duration_seconds"]);
  },

  "onChange": () => {
    assertEquals(cacheOf(hm.onChange("Cargo.lock")), { policy: "on_change", paths: ["Cargo.lock"] });
    assertEquals(cacheOf(hm.onChange("Cargo.toml", "src/**/*.rs", ["a", "b"])), {
      policy: "on_change",
      paths: ["Cargo.toml", "src/**/*.rs", "a", "b"],
    });
  },

  "compose": () => {
    assertEquals(cacheOf(hm.compose(hm.onChange("go.sum"), hm.ttl("7d"), hm.forever({ envKeys: ["GOFLAGS"] }))), {
      policy: "compose",
      sub_policies: [
        { policy: "on_change", paths: ["go.sum"] },
        { policy: "ttl", duration_seconds: 604800 },
        { policy: "forever", env_keys: ["GOFLAGS"] },
      ],
    });
    assertEquals(hm.compose(hm.compose(hm.forever())).toIr(), {
      policy: "compose",
      sub_policies: [{ policy: "compose", sub_policies: [{ policy: "forever" }] }],
    });
  },

  "policies are CachePolicy values and frozen": () => {
    const policy = hm.onChange(["a"], "b");
    assert(policy instanceof hm.CachePolicy && Object.isFrozen(policy));
    assertEquals(policy.paths, ["a", "b"]);
    assertEquals(new hm.CachePolicy("none").toIr(), { policy: "none" });
  },
};
