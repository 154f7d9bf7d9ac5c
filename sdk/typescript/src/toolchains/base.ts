/**
 * What every toolchain preset shares: the apt base, and projects whose
 * actions fork off their dependency (or setup) step.
 */

import { forever, onChange, ttl } from "../cache.ts";
import type { CachePolicy } from "../cache.ts";
import { HarmontError, show } from "../errors.ts";
import { absent, options } from "../options.ts";
import { Step, checkEnv, scratch } from "../step.ts";
import type { Env } from "../step.ts";

/** `PATH` of the images presets target (Debian and Ubuntu). */
export const SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/** The apt base is refreshed once a day. */
export const APT_BASE_TTL = 86400;

/** Apt bases made so far, by packages and image: the same ones give the same step. */
const aptBases = new Map<string, Step>();

/** Options of `aptBase`. */
export interface AptBaseOptions {
  /** The image to install into (`ubuntu:24.04` when left out). */
  image?: string | null;
}

/** Options every preset's `toolchain` and `project` take. */
export interface PresetOptions {
  /** The image of the apt base (`ubuntu:24.04` when left out). */
  image?: string | null;
  /** A step to build on instead of the preset's own apt base (see `aptBase`). */
  base?: Step | null;
  /** More apt packages for the preset's apt base. */
  packages?: readonly string[];
}

/** Options of `project.setup`. */
export interface SetupOptions {
  label?: string | null;
  cache?: CachePolicy | null;
  env?: Env | null;
}

/** Options of `project.action`. */
export interface ActionOptions {
  /** The step's label; the command when left out. */
  label?: string | null;
  env?: Env | null;
}

/** A list of apt packages: an array, or one string of names separated by spaces. */
export function packageList(packages: unknown): string[] {
  if (absent(packages)) return [];
  if (typeof packages === "string") return packages.split(/\s+/).filter((p) => p !== "");
  if (!Array.isArray(packages)) throw new HarmontError(`packages must be a list of apt package names, not ${show(packages)}`);
  return [...packages];
}

/**
 * One step installing `packages` with apt, cached for a day; the same
 * packages on the same image give the same step, so presets and pipelines
 * share it.
 */
export function aptBase(packages: string | readonly string[], opts?: AptBaseOptions): Step {
  const o = options(opts, ["image"], "aptBase");
  const list = packageList(packages);
  for (const name of list) {
    if (typeof name !== "string" || name === "" || name.startsWith("-")) {
      throw new HarmontError(`apt package names must be non-empty strings, not ${show(name)}`);
    }
  }
  const names = [...new Set(list)].sort();
  const image = (o.image ?? null) as string | null;
  const memo = JSON.stringify([names, image]);
  let base = aptBases.get(memo);
  if (base === undefined) {
    const install = names.length > 0 ? ` && apt-get install -y --no-install-recommends ${names.join(" ")}` : "";
    const cmd = `apt-get update${install} && rm -rf /var/lib/apt/lists/*`;
    base = scratch({ image }).sh(cmd, { label: "apt base", cache: ttl(APT_BASE_TTL) });
    aptBases.set(memo, base);
  }
  return base;
}

/** Forgets every apt base. */
export function resetAptBases(): void {
  aptBases.clear();
}

/** `name` inside the project directory `path`. */
export function joined(path: string, name: string): string {
  return path === "." || path === "./" || path === "" ? name : `${path.replace(/\/+$/, "")}/${name}`;
}

/** A project's path, checked to be a string (an empty one fails as an empty `cwd`). */
export function projectPath(path: unknown): string {
  if (typeof path !== "string") throw new HarmontError(`a project's path must be a non-empty string, not ${show(path)}`);
  return path;
}

function cwdOf(path: string): string | null {
  return path === "." || path === "./" ? null : path;
}

/**
 * A project of a toolchain: actions fork off its dependency step, or off the
 * last `setup` step. In a pipeline's steps, it contributes `defaults()`.
 */
export class Project {
  /** The step actions fork off. */
  declare readonly start: Step;
  /** The project directory. */
  declare readonly path: string;
  /** Environment every step of the preset runs with. */
  declare readonly env: Readonly<Record<string, string>>;

  constructor(start: Step, path: string, env: Readonly<Record<string, string>>) {
    if (typeof path !== "string" || path === "") {
      throw new HarmontError(`a project's path must be a non-empty string, not ${show(path)}`);
    }
    this.start = start;
    this.path = path;
    this.env = { ...env };
  }

  /** This project with actions forking off `start`. */
  protected derive(start: Step): this {
    const clone = Object.assign(Object.create(Object.getPrototypeOf(this) as object) as this, this);
    (clone as { start: Step }).start = start;
    return clone;
  }

  /** A project whose later actions fork off a preparation step running `cmd`. */
  setup(cmd: string, opts?: SetupOptions): this {
    const o = options(opts, ["label", "cache", "env"], "setup");
    const step = this.start.sh(cmd, {
      cwd: cwdOf(this.path),
      label: o.label as string | null | undefined,
      cache: o.cache as CachePolicy | null | undefined,
      env: { ...this.env, ...(checkEnv(o.env) ?? {}) },
    });
    return this.derive(step);
  }

  /** A step running `cmd` in the project, forked off its dependency or setup step. */
  action(cmd: string, opts?: ActionOptions): Step {
    const o = options(opts, ["label", "env"], "action");
    return this.start.sh(cmd, {
      cwd: cwdOf(this.path),
      label: (o.label as string | null | undefined) || cmd,
      env: { ...this.env, ...(checkEnv(o.env) ?? {}) },
    });
  }

  /** The actions the project runs when a pipeline lists the project itself. */
  defaults(): Step[] {
    throw new HarmontError("this project has no default actions");
  }

  /** What the project contributes to a pipeline's steps. */
  _hmActions(): Step[] {
    return this.defaults();
  }
}

/** An installed toolchain: the apt base, then an install step cached forever. */
export class Toolchain {
  /** The install step; projects build on it. */
  declare readonly install: Step;
  declare readonly env: Readonly<Record<string, string>>;

  constructor(install: Step, env: Readonly<Record<string, string>>) {
    this.install = install;
    this.env = { ...env };
  }
}

export function installStep(base: Step, cmd: string, label: string, env: Readonly<Record<string, string>>): Step {
  return base.sh(cmd, { label, cache: forever(), env: { ...env } });
}

export function dependencyStep(
  start: Step,
  cmd: string,
  lockfiles: string[],
  path: string,
  label: string,
  env: Readonly<Record<string, string>>,
): Step {
  return start.sh(cmd, { cwd: cwdOf(path), label, cache: onChange(...lockfiles), env: { ...env } });
}

export function baseStep(base: unknown, packages: readonly string[], image: unknown): Step {
  if (!absent(base)) {
    if (!(base instanceof Step)) throw new HarmontError(`base must be a step such as aptBase([...]), not ${show(base)}`);
    return base;
  }
  return aptBase(packages, { image: image as string | null | undefined });
}

export function checkVersion(version: unknown, what: string): string {
  if (typeof version !== "string" || version === "" || /[\s'"$`;&|]/.test(version)) {
    throw new HarmontError(`${what} version must be a plain version string, not ${show(version)}`);
  }
  return version;
}

/** A preset's options, checked: `image`, `base`, `packages` (as a list) and the preset's own. */
export interface CheckedPresetOptions {
  image?: string | null;
  base?: Step | null;
  packages: string[];
  [option: string]: unknown;
}

/** The options of a preset's `toolchain` or `project`: `image`, `base`, `packages` and `extra` ones. */
export function presetOptions(opts: unknown, extra: readonly string[], what: string): CheckedPresetOptions {
  const o = options(opts, ["image", "base", "packages", ...extra], what);
  return {
    ...o,
    image: o.image as string | null | undefined,
    base: o.base as Step | null | undefined,
    packages: packageList(o.packages),
  };
}
