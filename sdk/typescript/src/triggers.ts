/**
 * When hosted CI starts a pipeline: on a push to branches or tags, or on
 * pull-request events. `hm run` starts pipelines by hand and only carries
 * triggers into the envelope (`{"event": ...}` objects, from `toJSON`).
 */

import { allowed, options, show } from "./options.ts";

export type Trigger = PushTrigger | PullRequestTrigger;

type PrEventType = "opened" | "synchronize" | "reopened" | "closed" | "ready_for_review";

const PR_EVENT_TYPES: readonly string[] = ["opened", "synchronize", "reopened", "closed", "ready_for_review"];
const DEFAULT_PR_TYPES: readonly PrEventType[] = ["opened", "synchronize", "reopened"];

/** One glob or several, as a list; `undefined` stays. */
function globs(value: unknown, what: string): string[] | undefined {
  if (value === undefined) return undefined;
  const list = typeof value === "string" ? [value] : value;
  if (!Array.isArray(list) || list.some((g) => typeof g !== "string")) {
    throw new TypeError(`${what} must be a glob or an array of globs, not ${show(value)}`);
  }
  return [...(list as string[])];
}

export class PushTrigger {
  readonly branches: string[] | undefined;
  readonly tags: string[] | undefined;

  constructor(branches: string[] | undefined, tags: string[] | undefined) {
    this.branches = branches;
    this.tags = tags;
  }

  toJSON(): Record<string, unknown> {
    const json: Record<string, unknown> = { event: "push" };
    if (this.branches !== undefined) json.branches = this.branches;
    if (this.tags !== undefined) json.tags = this.tags;
    return json;
  }
}

const PUSH_OPTIONS = allowed("branch", "tag");
const PR_OPTIONS = allowed("branches", "types");

/** On pushes to branches (`branch`) or tags (`tag`), exactly one of them; globs allowed. */
export function push(
  opts: { branch: string | string[]; tag?: undefined } | { tag: string | string[]; branch?: undefined },
): PushTrigger {
  if (opts === undefined || opts === null) {
    throw new TypeError('hm.push: pass exactly one of branch or tag\n  → e.g. push({ branch: "main" }) or push({ tag: "v*" })');
  }
  const o = options(opts, PUSH_OPTIONS, "push");
  const branches = globs("branch" in o ? o.branch : undefined, "push: branch");
  const tags = globs("tag" in o ? o.tag : undefined, "push: tag");
  if ((branches === undefined) === (tags === undefined)) {
    throw new Error('hm.push: pass exactly one of branch or tag\n  → e.g. push({ branch: "main" }) or push({ tag: "v*" })');
  }
  return new PushTrigger(branches, tags);
}

export class PullRequestTrigger {
  readonly branches: string[] | undefined;
  readonly types: string[];

  constructor(branches: string[] | undefined, types: string[]) {
    this.branches = branches;
    this.types = types;
  }

  toJSON(): Record<string, unknown> {
    const json: Record<string, unknown> = { event: "pull_request" };
    if (this.branches !== undefined) json.branches = this.branches;
    json.types = this.types;
    return json;
  }
}

/** On pull-request events (`types`, by default opened, synchronize and reopened) into `branches`. */
export function pullRequest(opts?: { branches?: string | string[]; types?: PrEventType[] }): PullRequestTrigger {
  const o = options(opts, PR_OPTIONS, "pullRequest");
  const types = (o.types ?? DEFAULT_PR_TYPES) as unknown;
  if (!Array.isArray(types)) throw new TypeError(`pullRequest: types must be an array, not ${show(types)}`);
  if (types.length === 0) throw new Error("hm.pullRequest: types must be non-empty");
  for (const type of types) {
    if (!PR_EVENT_TYPES.includes(type as string)) {
      throw new Error(`unknown pull_request type "${String(type)}"\n  → valid: ${[...PR_EVENT_TYPES].sort().join(", ")}`);
    }
  }
  return new PullRequestTrigger(globs(o.branches ?? undefined, "pullRequest: branches"), [...(types as string[])]);
}
