/** Triggers: classes whose JSON is Harmont's `{event: ...}`. */

import { pullRequest, PullRequestTrigger, push, PushTrigger } from "@harmont/hm";
import { assert, assertEquals, assertThrows } from "./assert.ts";

export const tests: Record<string, () => void> = {
  "push on branches or tags"() {
    assertEquals(push({ branch: "main" }).toJSON(), { event: "push", branches: ["main"] });
    assertEquals(push({ branch: ["main", "release/*"] }).toJSON(), { event: "push", branches: ["main", "release/*"] });
    assertEquals(push({ tag: "v*" }).toJSON(), { event: "push", tags: ["v*"] });
    const trigger = push({ branch: "main" });
    assert(trigger instanceof PushTrigger);
    assertEquals([trigger.branches, trigger.tags], [["main"], undefined]);
    assertEquals(JSON.stringify([trigger]), '[{"event":"push","branches":["main"]}]');
  },

  "push takes exactly one of branch and tag"() {
    assertThrows(() => push({} as never), "hm.push: pass exactly one of branch or tag");
    assertThrows(() => push({ branch: "main", tag: "v*" } as never), "exactly one of branch or tag");
    assertThrows(() => push(undefined as never), "exactly one of branch or tag", TypeError);
    assertThrows(() => push({ branches: "main" } as never), "push: unknown option `branches`");
    assertThrows(() => push({ branch: 5 } as never), "push: branch must be a glob or an array of globs");
  },

  "pull requests: opened, synchronize and reopened by default"() {
    assertEquals(pullRequest().toJSON(), { event: "pull_request", types: ["opened", "synchronize", "reopened"] });
    const trigger = pullRequest({ branches: "develop", types: ["opened", "closed"] });
    assert(trigger instanceof PullRequestTrigger);
    assertEquals(trigger.toJSON(), { event: "pull_request", branches: ["develop"], types: ["opened", "closed"] });
    assertEquals(pullRequest({ branches: ["a", "b"] }).branches, ["a", "b"]);
  },

  "pull request types are checked"() {
    assertThrows(
      () => pullRequest({ types: ["merged" as never] }),
      'unknown pull_request type "merged"\n  → valid: closed, opened, ready_for_review, reopened, synchronize',
    );
    assertThrows(() => pullRequest({ types: [] }), "hm.pullRequest: types must be non-empty");
    assertThrows(() => pullRequest({ type: ["opened"] } as never), "pullRequest: unknown option `type`");
  },
};
