/** Cache policies: when a step's stored result may be reused. */

import { seconds } from "./duration.ts";
import type { Duration } from "./duration.ts";
import { HarmontError, show } from "./errors.ts";
import { options } from "./options.ts";

/** A policy's IR form; keys that are empty are left out. */
export interface CachePolicyIr {
  policy: string;
  env_keys?: string[];
  duration_seconds?: number;
  paths?: string[];
  sub_policies?: CachePolicyIr[];
  key?: string;
}

/** Options of `forever` and `ttl`. */
export interface EnvKeysOptions {
  /** Variables whose values are part of the cache key. */
  envKeys?: string | readonly string[];
}

/** A cache policy; build one with `forever`, `ttl`, `onChange` or `compose`. */
export class CachePolicy {
  declare readonly policy: string;
  declare readonly envKeys: readonly string[];
  declare readonly durationSeconds: number | null;
  declare readonly paths: readonly string[];
  declare readonly subPolicies: readonly CachePolicy[];
  declare readonly key: string | null;

  constructor(
    policy: string,
    fields: {
      envKeys?: readonly string[];
      durationSeconds?: number | null;
      paths?: readonly string[];
      subPolicies?: readonly CachePolicy[];
      key?: string | null;
    } = {},
  ) {
    this.policy = policy;
    this.envKeys = Object.freeze([...(fields.envKeys ?? [])]);
    this.durationSeconds = fields.durationSeconds ?? null;
    this.paths = Object.freeze([...(fields.paths ?? [])]);
    this.subPolicies = Object.freeze([...(fields.subPolicies ?? [])]);
    this.key = fields.key ?? null;
    Object.freeze(this);
  }

  /** The IR form, keys in the order Python's SDK writes them. */
  toIr(): CachePolicyIr {
    const ir: CachePolicyIr = { policy: this.policy };
    if (this.envKeys.length > 0) ir.env_keys = [...this.envKeys];
    if (this.durationSeconds !== null) ir.duration_seconds = this.durationSeconds;
    if (this.paths.length > 0) ir.paths = [...this.paths];
    if (this.subPolicies.length > 0) ir.sub_policies = this.subPolicies.map((p) => p.toIr());
    if (this.key !== null) ir.key = this.key;
    return ir;
  }

  describe(): string {
    return `CachePolicy(${JSON.stringify(this.toIr())})`;
  }
}

function names(envKeys: unknown): string[] {
  if (envKeys === undefined || envKeys === null) return [];
  const list = typeof envKeys === "string" ? [envKeys] : envKeys;
  if (!Array.isArray(list)) throw new HarmontError(`envKeys must be variable names, not ${show(envKeys)}`);
  for (const name of list) {
    if (typeof name !== "string" || name === "") {
      throw new HarmontError(`envKeys must be variable names, not ${show(name)}`);
    }
  }
  return list as string[];
}

/** Reuse the result until the command, environment, image, parent or `envKeys` change. */
export function forever(opts?: EnvKeysOptions): CachePolicy {
  const o = options(opts, ["envKeys"], "forever");
  return new CachePolicy("forever", { envKeys: names(o.envKeys) });
}

/** Reuse the result within the same window of `duration` (seconds or a string such as `"1d"`). */
export function ttl(duration: Duration, opts?: EnvKeysOptions): CachePolicy {
  const o = options(opts, ["envKeys"], "ttl");
  const envKeys = names(o.envKeys);
  return new CachePolicy("ttl", { envKeys, durationSeconds: seconds(duration, "ttl") });
}

/** Reuse the result until a file the `paths` (files, directories or globs) select changes. */
export function onChange(...paths: ReadonlyArray<string | readonly string[]>): CachePolicy {
  const flat: unknown[] = [];
  for (const path of paths as unknown[]) {
    if (Array.isArray(path)) flat.push(...path);
    else flat.push(path);
  }
  if (flat.length === 0) throw new HarmontError("onChange needs at least one path");
  for (const path of flat) {
    if (typeof path !== "string" || path === "") {
      throw new HarmontError(`onChange paths must be non-empty strings, not ${show(path)}`);
    }
  }
  return new CachePolicy("on_change", { paths: flat as string[] });
}

/** Reuse the result only while every one of `policies` would. */
export function compose(...policies: CachePolicy[]): CachePolicy {
  if (policies.length === 0) throw new HarmontError("compose needs at least one policy");
  for (const policy of policies as unknown[]) {
    if (!(policy instanceof CachePolicy)) {
      throw new HarmontError(`compose takes cache policies, not ${show(policy)}`);
    }
  }
  return new CachePolicy("compose", { subPolicies: policies });
}
