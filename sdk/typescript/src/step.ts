/**
 * Steps: shell commands, each starting from its parent's filesystem.
 * `sh` makes a root (its parent is an empty `scratch` step), `step.sh` a
 * child, `fork` a branch point, `wait` a barrier in a pipeline's list.
 */

import { checkPolicy } from "./cache.ts";
import type { CachePolicy } from "./cache.ts";
import { parseDuration } from "./duration.ts";
import { allowed, options, optionalEnv, optionalString, show } from "./options.ts";
import { volumesIr } from "./volume.ts";
import type { VolumeIR, Volumes } from "./volume.ts";

export interface StepOptions {
  readonly label?: string;
  readonly cache?: CachePolicy;
  readonly env?: Readonly<Record<string, string>>;
  readonly image?: string;
  readonly runner?: string;
  readonly runnerArgs?: Readonly<Record<string, unknown>>;
  readonly key?: string;
  readonly cwd?: string;
  /**
   * Cache volumes mounted into the step (an addition of hm's): mount path
   * (absolute, or relative to the workspace) to a volume's name or
   * `volume(...)`, e.g. `{ target: "cargo-target" }`. They persist across
   * runs and are no part of the step's snapshot or cache key.
   */
  readonly volumes?: Volumes;
}

/** What a step is made of (the constructor's argument). */
interface StepInit {
  cmd: string | null;
  parent: Step | null;
  isWait?: boolean;
  continueOnFailure?: boolean;
  label?: string;
  cache?: CachePolicy;
  env?: Record<string, string>;
  timeoutSeconds?: number;
  image?: string;
  runner?: string;
  runnerArgs?: Record<string, unknown>;
  keyOverride?: string;
  /** In the IR's form. */
  volumes?: Record<string, VolumeIR>;
}

let lastId = 0;

export class Step {
  /** Unique per step made in this process. */
  declare readonly _id: number;
  /** The command; `null` for `scratch`, `fork` and `wait`. */
  declare readonly _cmd: string | null;
  declare readonly _parent: Step | null;
  declare readonly _isWait: boolean;
  declare readonly _continueOnFailure: boolean;
  declare readonly _label: string | undefined;
  declare readonly _cache: CachePolicy | undefined;
  declare readonly _env: Readonly<Record<string, string>> | undefined;
  declare readonly _timeoutSeconds: number | undefined;
  declare readonly _image: string | undefined;
  declare readonly _runner: string | undefined;
  declare readonly _runnerArgs: Readonly<Record<string, unknown>> | undefined;
  declare readonly _keyOverride: string | undefined;
  /** The step's cache volumes in the IR's form, when given. */
  declare readonly _volumes: Readonly<Record<string, VolumeIR>> | undefined;

  /** @internal Steps come from `sh`, `scratch`, `wait`, `step.sh`, `fork` and `timeout`. */
  constructor(init: StepInit) {
    (this as { _id: number })._id = ++lastId;
    const self = this as Record<string, unknown>;
    self._cmd = init.cmd;
    self._parent = init.parent;
    self._isWait = init.isWait ?? false;
    self._continueOnFailure = init.continueOnFailure ?? false;
    self._label = init.label;
    self._cache = init.cache;
    self._env = init.env;
    self._timeoutSeconds = init.timeoutSeconds;
    self._image = init.image;
    self._runner = init.runner;
    self._runnerArgs = init.runnerArgs;
    self._keyOverride = init.keyOverride;
    // Only when given: a Harmont step has no such property.
    if (init.volumes !== undefined) self._volumes = init.volumes;
  }

  /**
   * A step running `cmd` on this step's filesystem. On an empty root
   * (`scratch`) the root's image carries over; `cwd` runs the command in
   * that directory.
   */
  sh(cmd: string, opts?: StepOptions): Step {
    return child(this, cmd, opts, "step.sh");
  }

  /** A branch point: a step of its own that runs nothing; its children build on this step. */
  fork(opts?: { label?: string }): Step {
    const o = options(opts, FORK_OPTIONS, "fork");
    optionalString(o.label, "fork: label");
    return new Step({ cmd: null, parent: this, label: o.label as string | undefined });
  }

  /** @internal This step with a time limit, in the same place of its chain. */
  withTimeoutSeconds(seconds: number): Step {
    return new Step({
      cmd: this._cmd,
      parent: this._parent,
      isWait: this._isWait,
      continueOnFailure: this._continueOnFailure,
      label: this._label,
      cache: this._cache,
      env: this._env as Record<string, string> | undefined,
      timeoutSeconds: seconds,
      image: this._image,
      runner: this._runner,
      runnerArgs: this._runnerArgs as Record<string, unknown> | undefined,
      keyOverride: this._keyOverride,
      volumes: this._volumes as Record<string, VolumeIR> | undefined,
    });
  }
}

const SH_OPTIONS = allowed("label", "cache", "env", "image", "runner", "runnerArgs", "key", "cwd", "volumes");
const FORK_OPTIONS = allowed("label");
const SCRATCH_OPTIONS = allowed("image");
const WAIT_OPTIONS = allowed("continueOnFailure");

/** A string option given as something else. */
function notAString(what: string, name: string, value: unknown): TypeError {
  return new TypeError(`${what}: ${name} must be a string, not ${show(value)}`);
}

/** The values of a step's options (`what` names the call) have their types. */
export function checkStepOptions(o: Readonly<Record<string, unknown>>, what: string): void {
  // Checked one by one, messages made only on failure: this runs for every step.
  const { cwd, label, image, runner, key, env, cache, runnerArgs, volumes } = o;
  if (cwd != null && typeof cwd !== "string") throw notAString(what, "cwd", cwd);
  if (label != null && typeof label !== "string") throw notAString(what, "label", label);
  if (image != null && typeof image !== "string") throw notAString(what, "image", image);
  if (runner != null && typeof runner !== "string") throw notAString(what, "runner", runner);
  if (key != null && typeof key !== "string") throw notAString(what, "key", key);
  if (env != null) optionalEnv(env, what, "env");
  if (cache != null) checkPolicy(cache, what);
  if (runnerArgs != null && (typeof runnerArgs !== "object" || Array.isArray(runnerArgs))) {
    throw new TypeError(`${what}: runnerArgs must be an object, not ${show(runnerArgs)}`);
  }
  if (volumes != null) volumesIr(volumes, what);
}

/**
 * What `child` makes steps from: one object, refilled for each step (the
 * constructor copies it), so that making a step allocates only the step.
 */
const INIT: StepInit = {
  cmd: null,
  parent: null,
  label: undefined,
  cache: undefined,
  env: undefined,
  image: undefined,
  runner: undefined,
  runnerArgs: undefined,
  keyOverride: undefined,
  volumes: undefined,
};

/** The child of `parent` running `cmd`, for `what` (`sh` or `step.sh`). */
function child(parent: Step, cmd: unknown, opts: StepOptions | undefined, what: string): Step {
  const o = options(opts, SH_OPTIONS, what) as StepOptions;
  const cwd = o.cwd;
  if (cwd === "") {
    throw new Error('hm: cwd must be a non-empty path\n  → omit cwd to run in the workspace root, or pass cwd="some/dir"');
  }
  if (typeof cmd !== "string") throw new TypeError(`${what}: the command must be a string, not ${show(cmd)}`);
  checkStepOptions(o as Readonly<Record<string, unknown>>, what);
  let image = o.image;
  if (image === undefined || image === null) image = parent._cmd === null ? parent._image : undefined;
  INIT.cmd = cwd !== undefined && cwd !== null ? `cd ${cwd} && ${cmd}` : cmd;
  INIT.parent = parent;
  INIT.label = o.label;
  INIT.cache = o.cache;
  // Copied: Harmont makes the IR at `pipeline()`, ours when it is first
  // read, so an object changed after the call must not change the step.
  const env = o.env as Record<string, string> | undefined;
  INIT.env = env != null ? { ...env } : env;
  INIT.image = image;
  INIT.runner = o.runner;
  const runnerArgs = o.runnerArgs as Record<string, unknown> | undefined;
  INIT.runnerArgs = runnerArgs != null ? (JSON.parse(JSON.stringify(runnerArgs)) as Record<string, unknown>) : runnerArgs;
  INIT.keyOverride = o.key;
  INIT.volumes = o.volumes != null ? volumesIr(o.volumes, what) : undefined;
  return new Step(INIT);
}

/** An empty root: it runs nothing; its first `.sh` starts from `image` (by default `ubuntu:24.04`). */
export function scratch(opts?: { image?: string }): Step {
  const o = options(opts, SCRATCH_OPTIONS, "scratch");
  optionalString(o.image, "scratch: image");
  return new Step({ cmd: null, parent: null, image: o.image as string | undefined });
}

/** A root step running `cmd`: `scratch().sh(cmd, opts)`. */
export function sh(cmd: string, opts?: StepOptions): Step {
  return child(new Step({ cmd: null, parent: null }), cmd, opts, "sh");
}

/**
 * A barrier in a pipeline's list: every step after it depends on every
 * step emitted between it and the barrier before. With `continueOnFailure`
 * (an addition of hm's) the steps after it run even when those failed.
 */
export function wait(opts?: { continueOnFailure?: boolean }): Step {
  const o = options(opts, WAIT_OPTIONS, "wait");
  const lenient = o.continueOnFailure ?? false;
  if (typeof lenient !== "boolean") {
    throw new TypeError(`wait: continueOnFailure must be true or false, not ${show(lenient)}`);
  }
  return new Step({ cmd: null, parent: null, isWait: true, continueOnFailure: lenient });
}

/**
 * `step` with a wall-clock limit: it is killed and fails as timed out when
 * `duration` (`"30s"`, `"5m"`, `"1h30m"` or seconds) has passed. A step
 * that has a limit gets the new one.
 */
export function timeout(duration: string | number, step: Step): Step {
  if (!(step instanceof Step)) {
    throw new TypeError(`timeout: the second argument must be a step, not ${show(step)}\n  → e.g. timeout("30s", sh("make test"))`);
  }
  if (step._isWait) {
    throw new Error(
      "hm: timeout() cannot wrap a wait() barrier\n" +
        '  → apply timeout() to a command step, e.g. timeout("30s", sh("make test"))',
    );
  }
  return step.withTimeoutSeconds(parseDuration(duration));
}
