/**
 * Cache volumes, an addition of hm's: named directories that hm keeps
 * across runs and mounts read-write into steps. What a step writes into
 * one (a compiler's cache, a package registry) is there for the next run,
 * but it is no part of the step's snapshot nor of any cache key.
 *
 * A step's `volumes` option and a pipeline's map mount paths (absolute, or
 * relative to the workspace) to a volume's name or to `volume(...)`. The
 * IR carries them as `volumes` on the step or the pipeline, and only when
 * given, so a Harmont file renders as before; hm checks names and paths
 * when it loads the pipeline.
 */

import { show } from "./options.ts";

/**
 * How steps that run at the same time share a volume: `"shared"`, every
 * step uses it at once (for tools that lock what they write, such as
 * cargo's registry); `"locked"`, one step at a time, the others wait (for
 * a cargo `target`); `"private"`, a step that finds it in use gets a
 * directory of its own.
 */
export type Sharing = "shared" | "locked" | "private";

const SHARINGS: readonly string[] = ["shared", "locked", "private"];

/** A volume as the IR writes it: the bare name when shared, else `{name, sharing}`. */
export type VolumeIR = string | { name: string; sharing: Sharing };

/** A step's or a pipeline's `volumes`: mount path to a volume's name or `volume(...)`. */
export type Volumes = Readonly<Record<string, string | Volume>>;

/** The cache volume `name` and its sharing; made by `volume()`. */
export class Volume {
  readonly name: string;
  readonly sharing: Sharing;

  /** @internal Volumes come from `volume()`. */
  constructor(name: string, sharing: Sharing) {
    this.name = name;
    this.sharing = sharing;
    Object.freeze(this);
  }

  /** The IR's form. */
  toJSON(): VolumeIR {
    return this.sharing === "shared" ? this.name : { name: this.name, sharing: this.sharing };
  }
}

/**
 * The cache volume `name`, for a step's or a pipeline's `volumes`, e.g.
 * `{ target: volume("cargo-target", { sharing: "locked" }) }`. `sharing`
 * is `"shared"` (the default), `"locked"` or `"private"`.
 */
export function volume(name: string, opts?: { sharing?: Sharing }): Volume {
  if (typeof name !== "string") throw new TypeError(`volume: the name must be a string, not ${show(name)}`);
  if (opts !== undefined && opts !== null && (typeof opts !== "object" || Array.isArray(opts))) {
    throw new TypeError(`volume: options must be an object, not ${show(opts)}`);
  }
  for (const key in opts ?? {}) {
    if (key !== "sharing") throw new TypeError(`volume: unknown option \`${key}\` (options: sharing)`);
  }
  const sharing: unknown = opts?.sharing ?? "shared";
  if (typeof sharing !== "string" || !SHARINGS.includes(sharing)) {
    throw new TypeError(`volume: invalid sharing ${show(sharing)}\n  → use "shared" (the default), "locked" or "private"`);
  }
  return new Volume(name, sharing as Sharing);
}

/**
 * `value` (a `volumes` option of `what`) in the IR's form, a copy; `undefined`
 * when not given. A value that is no object of names or `volume(...)`s is a
 * `TypeError`.
 */
export function volumesIr(value: unknown, what: string): Record<string, VolumeIR> | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value !== "object" || Array.isArray(value) || value instanceof Volume) {
    throw new TypeError(`${what}: volumes must be an object of mount paths to volume names, not ${show(value)}`);
  }
  const out: Record<string, VolumeIR> = {};
  for (const [path, mount] of Object.entries(value as Record<string, unknown>)) {
    if (typeof mount === "string") out[path] = mount;
    else if (mount instanceof Volume) out[path] = mount.toJSON();
    else throw new TypeError(`${what}: the volume at ${show(path)} must be a name or volume(...), not ${show(mount)}`);
  }
  return out;
}
