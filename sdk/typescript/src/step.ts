/** Steps: shell commands that build on each other's filesystems. */

import { CachePolicy } from "./cache.ts";
import { seconds } from "./duration.ts";
import type { Duration } from "./duration.ts";
import { HarmontError, show } from "./errors.ts";
import { absent, options } from "./options.ts";

/** The image of a root step that names none. */
export const DEFAULT_IMAGE = "ubuntu:24.04";

/** Environment variables of a step; numbers become strings. */
export type Env = Readonly<Record<string, string | number>>;

/** Options of `sh` and `step.sh`. */
export interface ShOptions {
  /** Run the command in this directory (`cd DIR && CMD`); it must not be empty. */
  cwd?: string | null;
  /** What the step is called in output; a unique label also gives the step its key. */
  label?: string | null;
  cache?: CachePolicy | null;
  env?: Env | null;
  /** The image to start from (a root's default is `ubuntu:24.04`). */
  image?: string | null;
  /** The step's key; by default derived from its label or its place. */
  key?: string | null;
  runner?: string | null;
  runnerArgs?: unknown;
}

/** Options of `scratch`. */
export interface ScratchOptions {
  image?: string | null;
}

/** What a step is made of (see `Step`). */
export interface StepFields {
  parent?: Step | null;
  image?: string | null;
  label?: string | null;
  cache?: CachePolicy | null;
  env?: Env | null;
  key?: string | null;
  timeoutSeconds?: number | null;
  runner?: string | null;
  runnerArgs?: unknown;
}

const SH_OPTIONS = ["cwd", "label", "cache", "env", "image", "key", "runner", "runnerArgs"] as const;

/** `env` checked, with its values as strings; `null` when there is none. */
export function checkEnv(env: unknown): Record<string, string> | null {
  if (absent(env)) return null;
  if (typeof env !== "object" || Array.isArray(env)) {
    throw new HarmontError(`env must be a mapping of names to strings, not ${show(env)}`);
  }
  const out: Record<string, string> = {};
  const given = env as Record<string, unknown>;
  for (const name of Object.keys(given)) {
    const value = given[name];
    if (name === "") throw new HarmontError(`env names must be non-empty strings, not ${show(name)}`);
    if (typeof value !== "string" && typeof value !== "number") {
      throw new HarmontError(`env value of ${name} must be a string, not ${show(value)}`);
    }
    const text = typeof value === "string" ? value : String(value);
    if (name === "__proto__") {
      // A variable like any other, not the prototype.
      Object.defineProperty(out, name, { value: text, enumerable: true, writable: true, configurable: true });
    } else {
      out[name] = text;
    }
  }
  return out;
}

function command(cmd: unknown, cwd: unknown): string {
  if (typeof cmd !== "string") throw new HarmontError(`a step's command must be a string, not ${show(cmd)}`);
  if (absent(cwd)) return cmd;
  if (typeof cwd !== "string" || cwd.trim() === "") {
    throw new HarmontError("cwd must be a non-empty path (leave it out to run in /workspace)");
  }
  return `cd ${cwd} && ${cmd}`;
}

/** A shell step. Steps are immutable: every method returns a new step. */
export class Step {
  /** The command; `null` for an empty root (`scratch`). */
  declare readonly cmd: string | null;
  declare readonly parent: Step | null;
  declare readonly image: string | null;
  declare readonly label: string | null;
  declare readonly cache: CachePolicy | null;
  declare readonly env: Readonly<Record<string, string>> | null;
  declare readonly key: string | null;
  declare readonly timeoutSeconds: number | null;
  declare readonly runner: string | null;
  declare readonly runnerArgs: unknown;

  constructor(cmd: string | null, fields: StepFields = {}) {
    const { cache, label, key, image } = fields;
    if (!absent(cache) && !(cache instanceof CachePolicy)) {
      throw new HarmontError(`cache must be a policy such as forever(), not ${show(cache)}`);
    }
    if (!absent(label) && typeof label !== "string") {
      throw new HarmontError(`label must be a string, not ${show(label)}`);
    }
    if (!absent(key) && (typeof key !== "string" || key === "")) {
      throw new HarmontError(`key must be a non-empty string, not ${show(key)}`);
    }
    if (!absent(image) && (typeof image !== "string" || image === "")) {
      throw new HarmontError(`image must be a non-empty string, not ${show(image)}`);
    }
    this.cmd = cmd;
    this.parent = fields.parent ?? null;
    this.image = image ?? null;
    this.label = label ?? null;
    this.cache = cache ?? null;
    const env = checkEnv(fields.env);
    this.env = env === null ? null : Object.freeze(env);
    this.key = key ?? null;
    this.timeoutSeconds = fields.timeoutSeconds ?? null;
    this.runner = fields.runner ?? null;
    this.runnerArgs = fields.runnerArgs ?? null;
    Object.freeze(this);
  }

  /** Whether this is an empty root (`scratch`) rather than a command. */
  get isScratch(): boolean {
    return this.cmd === null;
  }

  /**
   * A step that runs `cmd` on this step's filesystem (a scratch root's first
   * command starts from its image).
   */
  sh(cmd: string, opts?: ShOptions): Step {
    const o = options(opts, SH_OPTIONS, "step.sh");
    const cmdText = command(cmd, o.cwd);
    const scratch = this.isScratch;
    return new Step(cmdText, {
      parent: scratch ? null : this,
      image: scratch ? (o.image as string | null | undefined) || this.image : (o.image as string | null | undefined),
      label: o.label as string | null | undefined,
      cache: o.cache as CachePolicy | null | undefined,
      env: o.env as Env | null | undefined,
      key: o.key as string | null | undefined,
      runner: o.runner as string | null | undefined,
      runnerArgs: o.runnerArgs,
    });
  }

  /** A branch point: every `.sh` on it starts from this step's filesystem. */
  fork(label?: string | null): Fork {
    return new Fork(this, label);
  }

  describe(): string {
    return `<Step ${this.label || (this.isScratch ? "scratch" : JSON.stringify(this.cmd))}>`;
  }
}

/** A branch point of a step (see `Step.fork`). */
export class Fork {
  declare readonly step: Step;
  declare readonly label: string | null;

  constructor(step: Step, label?: string | null) {
    this.step = step;
    this.label = label ?? null;
    Object.freeze(this);
  }

  sh(cmd: string, opts?: ShOptions): Step {
    return this.step.sh(cmd, opts);
  }

  fork(label?: string | null): Fork {
    return new Fork(this.step, label);
  }

  describe(): string {
    return `<Fork of ${this.step.describe()}>`;
  }
}

/** `step` with some fields changed. */
export function replaceStep(step: Step, changes: StepFields): Step {
  return new Step(step.cmd, {
    parent: step.parent,
    image: step.image,
    label: step.label,
    cache: step.cache,
    env: step.env,
    key: step.key,
    timeoutSeconds: step.timeoutSeconds,
    runner: step.runner,
    runnerArgs: step.runnerArgs,
    ...changes,
  });
}

/** A root step: `cmd` on a fresh `image` (`ubuntu:24.04` when left out). */
export function sh(cmd: string, opts?: ShOptions): Step {
  const o = options(opts, SH_OPTIONS, "sh");
  return new Step(command(cmd, o.cwd), {
    label: o.label as string | null | undefined,
    cache: o.cache as CachePolicy | null | undefined,
    env: o.env as Env | null | undefined,
    image: o.image as string | null | undefined,
    key: o.key as string | null | undefined,
    runner: o.runner as string | null | undefined,
    runnerArgs: o.runnerArgs,
  });
}

/** An empty root: its first `.sh` runs on `image`. */
export function scratch(opts?: ScratchOptions): Step {
  const o = options(opts, ["image"], "scratch");
  return new Step(null, { image: o.image as string | null | undefined });
}

/** `step` with a time limit (`"30s"`, `"5m"`, `"1h30m"`, or seconds). */
export function timeout(duration: Duration, step: Step | Fork): Step {
  const target: unknown = step instanceof Fork ? step.step : step;
  if (!(target instanceof Step) || target.isScratch) {
    throw new HarmontError(`timeout applies to a step, not ${show(target)}`);
  }
  return replaceStep(target, { timeoutSeconds: seconds(duration, "timeout") });
}

/**
 * The key a label gives: lowercase, `:emoji:` shortcodes dropped, runs of
 * other characters turned into `-`.
 */
export function slugify(label: string): string {
  // By hand rather than with three regular expressions: this runs for every
  // labelled step, and QuickJS's regular expressions are slow.
  const text = label.toLowerCase();
  let out = "";
  let dash = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 58 /* : */) {
      let j = i + 1;
      while (j < text.length && isShortcodeChar(text.charCodeAt(j))) j++;
      if (j > i + 1 && j < text.length && text.charCodeAt(j) === 58) {
        i = j; // `:name:` is dropped
        continue;
      }
    }
    if (isSlugChar(c)) {
      if (dash && out !== "") out += "-";
      dash = false;
      out += text[i];
    } else {
      dash = true;
    }
  }
  return out;
}

/** `[a-z0-9]`. */
function isSlugChar(c: number): boolean {
  return (c >= 97 && c <= 122) || (c >= 48 && c <= 57);
}

/** `[a-z0-9_+-]`, what an emoji shortcode is made of. */
function isShortcodeChar(c: number): boolean {
  return isSlugChar(c) || c === 95 || c === 43 || c === 45;
}
