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

/** The options of `sh` and `step.sh`, as a lookup (cheaper than a list's `includes` in QuickJS). */
const SH_OPTIONS: Readonly<Record<string, true>> = {
  cwd: true,
  label: true,
  cache: true,
  env: true,
  image: true,
  key: true,
  runner: true,
  runnerArgs: true,
};
const SH_OPTION_NAMES = Object.keys(SH_OPTIONS);

/** `env` checked, with its values as strings; `null` when there is none. */
export function checkEnv(env: unknown): Record<string, string> | null {
  if (absent(env)) return null;
  if (typeof env !== "object" || Array.isArray(env)) {
    throw new HarmontError(`env must be a mapping of names to strings, not ${show(env)}`);
  }
  const out: Record<string, string> = {};
  const given = env as Record<string, unknown>;
  for (const name in given) {
    if (!Object.hasOwn(given, name)) continue;
    const value = given[name];
    if (name === "") throw new HarmontError(`env names must be non-empty strings, not ${show(name)}`);
    let text: string;
    if (typeof value === "string") text = value;
    else if (typeof value === "number") text = String(value);
    else throw new HarmontError(`env value of ${name} must be a string, not ${show(value)}`);
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

/**
 * A step's fields, in the order hm's engine reads them: command, parent,
 * image, label, cache, env, key, timeout in seconds, runner, runner args.
 * One array rather than ten properties: QuickJS builds it in one go, and
 * steps are made by the thousand.
 */
export type StepRecord = readonly [
  cmd: string | null,
  parent: Step | null,
  image: string | null,
  label: string | null,
  cache: CachePolicy | null,
  env: Readonly<Record<string, string>> | null,
  key: string | null,
  timeoutSeconds: number | null,
  runner: string | null,
  runnerArgs: unknown,
];

/** `value` as an optional non-empty string option. */
function nonEmpty(value: unknown, what: string): string | null {
  if (absent(value)) return null;
  if (typeof value !== "string" || value === "") throw new HarmontError(`${what} must be a non-empty string, not ${show(value)}`);
  return value;
}

/** The record of a step running `cmd` on `parent` with the options `opts` of `what`, checked. */
function shRecord(cmd: string | null, parent: Step | null, inherited: string | null, opts: unknown, what: string): StepRecord {
  if (absent(opts)) return [command(cmd, null), parent, inherited, null, null, null, null, null, null, null];
  if (typeof opts !== "object" || Array.isArray(opts)) {
    throw new HarmontError(`${what} takes an options object, not ${show(opts)}`);
  }
  const o = opts as ShOptions;
  for (const name in o) {
    if (SH_OPTIONS[name] !== true && Object.hasOwn(o, name)) {
      throw new HarmontError(`${what} has no option \`${name}\` (options: ${SH_OPTION_NAMES.join(", ")})`);
    }
  }
  // Checked in the order Python's SDK checks them.
  const text = command(cmd, o.cwd);
  const cache = o.cache ?? null;
  if (cache !== null && !(cache instanceof CachePolicy)) {
    throw new HarmontError(`cache must be a policy such as forever(), not ${show(cache)}`);
  }
  const label = o.label ?? null;
  if (label !== null && typeof label !== "string") throw new HarmontError(`label must be a string, not ${show(label)}`);
  const key = nonEmpty(o.key, "key");
  const image = nonEmpty(o.image, "image") ?? inherited;
  const env = checkEnv(o.env);
  return [text, parent, image, label, cache, env, key, null, o.runner ?? null, o.runnerArgs ?? null];
}

/**
 * A shell step. Steps are immutable: every method returns a new step, and
 * their fields have no setters.
 */
export class Step {
  /** @internal What the step is made of; hm's engine reads it. */
  declare readonly _record: StepRecord;

  /** @internal Steps are made by `sh`, `scratch`, `step.sh` and `timeout`. */
  constructor(record: StepRecord) {
    this._record = record;
  }

  /** The command; `null` for an empty root (`scratch`). */
  get cmd(): string | null {
    return this._record[0];
  }
  get parent(): Step | null {
    return this._record[1];
  }
  get image(): string | null {
    return this._record[2];
  }
  get label(): string | null {
    return this._record[3];
  }
  get cache(): CachePolicy | null {
    return this._record[4];
  }
  get env(): Readonly<Record<string, string>> | null {
    return this._record[5];
  }
  get key(): string | null {
    return this._record[6];
  }
  get timeoutSeconds(): number | null {
    return this._record[7];
  }
  get runner(): string | null {
    return this._record[8];
  }
  get runnerArgs(): unknown {
    return this._record[9];
  }

  /** Whether this is an empty root (`scratch`) rather than a command. */
  get isScratch(): boolean {
    return this._record[0] === null;
  }

  /**
   * A step that runs `cmd` on this step's filesystem (a scratch root's first
   * command starts from its image).
   */
  sh(cmd: string, opts?: ShOptions): Step {
    return this._record[0] === null
      ? new Step(shRecord(cmd, null, this._record[2], opts, "step.sh"))
      : new Step(shRecord(cmd, this, null, opts, "step.sh"));
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

/** A root step: `cmd` on a fresh `image` (`ubuntu:24.04` when left out). */
export function sh(cmd: string, opts?: ShOptions): Step {
  return new Step(shRecord(cmd, null, null, opts, "sh"));
}

/** An empty root: its first `.sh` runs on `image`. */
export function scratch(opts?: ScratchOptions): Step {
  const o = options(opts, ["image"], "scratch");
  return new Step([null, null, nonEmpty(o.image, "image"), null, null, null, null, null, null, null]);
}

/** `step` with a time limit (`"30s"`, `"5m"`, `"1h30m"`, or seconds). */
export function timeout(duration: Duration, step: Step | Fork): Step {
  const target: unknown = step instanceof Fork ? step.step : step;
  if (!(target instanceof Step) || target.isScratch) {
    throw new HarmontError(`timeout applies to a step, not ${show(target)}`);
  }
  const r = target._record;
  return new Step([r[0], r[1], r[2], r[3], r[4], r[5], r[6], seconds(duration, "timeout"), r[8], r[9]]);
}
