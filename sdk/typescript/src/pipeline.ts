/** Pipelines, waits and triggers: what a pipeline file exports. */

import { seconds } from "./duration.ts";
import type { Duration } from "./duration.ts";
import { HarmontError, show } from "./errors.ts";
import { absent, options } from "./options.ts";
import { checkEnv } from "./step.ts";
import type { Env, Fork, Step } from "./step.ts";

/** A join in a pipeline's list (see `wait`). */
export class Wait {
  declare readonly continueOnFailure: boolean;

  constructor(continueOnFailure = false) {
    this.continueOnFailure = continueOnFailure;
    Object.freeze(this);
  }

  describe(): string {
    return `wait({continueOnFailure: ${this.continueOnFailure}})`;
  }
}

/** Options of `wait`. */
export interface WaitOptions {
  /** Run the later steps even if earlier ones failed. */
  continueOnFailure?: boolean;
}

/**
 * Every step after this in the list runs after every step before it (back to
 * the previous wait). With `continueOnFailure` they run even if those failed.
 */
export function wait(opts?: WaitOptions): Wait {
  const o = options(opts, ["continueOnFailure"], "wait");
  return new Wait(Boolean(o.continueOnFailure));
}

/** A trigger's IR form. */
export interface TriggerIr {
  type: "push" | "pull_request";
  branches?: string[];
  tags?: string[];
  types?: string[];
}

/** A trigger for hosted CI; kept in the IR. */
export class Trigger {
  declare readonly ir: Readonly<TriggerIr>;

  constructor(ir: TriggerIr) {
    this.ir = Object.freeze(ir);
    Object.freeze(this);
  }

  describe(): string {
    return `Trigger(${JSON.stringify(this.ir)})`;
  }
}

/** One glob or a list of them. */
export type Globs = string | readonly string[];

function globs(value: unknown, what: string): string[] {
  const items: unknown[] = typeof value === "string" ? [value] : Array.isArray(value) ? [...value] : [];
  if (items.length === 0 || !items.every((i) => typeof i === "string" && i !== "")) {
    throw new HarmontError(`${what} must be a glob or a list of globs, not ${show(value)}`);
  }
  return items as string[];
}

/** Options of `push`: exactly one of the two. */
export type PushOptions = { branch: Globs; tag?: undefined } | { tag: Globs; branch?: undefined };

/** A push to matching branches, or of matching tags (exactly one of the two). */
export function push(opts: PushOptions): Trigger {
  const o = options(opts, ["branch", "tag"], "push");
  if (absent(o.branch) === absent(o.tag)) throw new HarmontError("push takes exactly one of branch or tag");
  if (!absent(o.branch)) return new Trigger({ type: "push", branches: globs(o.branch, "branch") });
  return new Trigger({ type: "push", tags: globs(o.tag, "tag") });
}

/** Options of `pullRequest`. */
export interface PullRequestOptions {
  /** Target branches (globs); every branch when left out. */
  branches?: Globs | null;
  /** Event types; `["opened", "synchronize", "reopened"]` when left out. */
  types?: string | readonly string[];
}

/** A pull request (to matching branches) of the given event types. */
export function pullRequest(opts?: PullRequestOptions): Trigger {
  const o = options(opts, ["branches", "types"], "pullRequest");
  const ir: TriggerIr = { type: "pull_request" };
  if (!absent(o.branches)) ir.branches = globs(o.branches, "branches");
  const types = o.types === undefined ? ["opened", "synchronize", "reopened"] : o.types;
  const kinds: unknown[] = typeof types === "string" ? [types] : Array.isArray(types) ? [...types] : [];
  if (kinds.length === 0 || !kinds.every((t) => typeof t === "string" && t !== "")) {
    throw new HarmontError(`types must be pull request event types, not ${show(types)}`);
  }
  ir.types = kinds as string[];
  return new Trigger(ir);
}

/** `pullRequest`. */
export const pr = pullRequest;

/** Something with default actions: a toolchain project. */
export interface HasActions {
  defaults(): readonly Step[];
}

/**
 * What a pipeline runs: a step, a fork (its step), a wait, a toolchain
 * project (its default actions), or arrays of these, nested as you like.
 */
export type Steps = Step | Fork | Wait | HasActions | null | undefined | readonly Steps[];

/** Options of `pipeline`. */
export interface PipelineOptions {
  /** Environment of every step, over hm's own and under each step's. */
  env?: Env | null;
  /** A limit on the whole pipeline. */
  timeout?: Duration | null;
}

/** A pipeline's steps with its environment and time limit (see `pipeline`). */
export class PipelineBody {
  declare readonly steps: Steps;
  declare readonly env: Readonly<Record<string, string>>;
  declare readonly timeoutSeconds: number | null;

  constructor(steps: Steps, env: Record<string, string>, timeoutSeconds: number | null) {
    this.steps = steps;
    this.env = Object.freeze(env);
    this.timeoutSeconds = timeoutSeconds;
    Object.freeze(this);
  }

  describe(): string {
    return "a pipeline body";
  }
}

/** The body of a pipeline definition: `steps` with the pipeline's `env` and `timeout`. */
export function pipeline(steps: Steps, opts?: PipelineOptions): PipelineBody {
  const o = options(opts, ["env", "timeout"], "pipeline");
  const env = checkEnv(o.env) ?? {};
  const limit = absent(o.timeout) ? null : seconds(o.timeout, "pipeline timeout");
  return new PipelineBody(steps, env, limit);
}

/** What a definition's `pipeline` holds: a body, bare steps, or a function called when rendering. */
export type PipelineSource = PipelineBody | Steps | (() => PipelineBody | Steps);

/**
 * A pipeline as a file exports it, as `default` or `pipelines` (one or an
 * array). `name` defaults to the slug, `allowManual` to true.
 */
export interface PipelineDefinition {
  /** `^[a-z][a-z0-9-]{0,63}$`: what `hm run SLUG` names. */
  slug: string;
  name?: string;
  allowManual?: boolean;
  triggers?: readonly Trigger[];
  pipeline: PipelineSource;
}
