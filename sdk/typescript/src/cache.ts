/**
 * Cache policies: plain objects told apart by `kind`, so a policy written
 * as a literal (`{ kind: "on_change", paths: ["Cargo.lock"] }`) works as
 * well as one made here. A step with no policy is never cached.
 */

import { allowed, options, optionalStrings, show } from "./options.ts";

/** Cached until the command, the environment keys named or the parent change. */
export interface CacheForever {
  readonly kind: "forever";
  readonly envKeys: readonly string[];
}

/** Cached for windows of `durationSeconds`. */
export interface CacheTTL {
  readonly kind: "ttl";
  readonly durationSeconds: number;
  readonly envKeys: readonly string[];
}

/** Cached while the files under `paths` (globs allowed) keep their contents. */
export interface CacheOnChange {
  readonly kind: "on_change";
  readonly paths: readonly string[];
}

/** Cached while every one of `policies` would be. */
export interface CacheCompose {
  readonly kind: "compose";
  readonly policies: readonly CachePolicy[];
}

export type CachePolicy = CacheForever | CacheTTL | CacheOnChange | CacheCompose;

const ENV_KEYS = allowed("envKeys");

export function forever(opts?: { envKeys?: string[] }): CacheForever {
  const o = options(opts, ENV_KEYS, "forever");
  optionalStrings(o.envKeys, "forever: envKeys");
  return { kind: "forever", envKeys: (o.envKeys as string[] | undefined) ?? [] };
}

export function ttl(durationSeconds: number, opts?: { envKeys?: string[] }): CacheTTL {
  if (typeof durationSeconds !== "number" || !Number.isInteger(durationSeconds) || durationSeconds <= 0) {
    throw new TypeError(
      `ttl: the duration is a whole number of seconds greater than 0, not ${show(durationSeconds)}\n` +
        "  → e.g. ttl(86400) for a day",
    );
  }
  const o = options(opts, ENV_KEYS, "ttl");
  optionalStrings(o.envKeys, "ttl: envKeys");
  return { kind: "ttl", durationSeconds, envKeys: (o.envKeys as string[] | undefined) ?? [] };
}

export function onChange(...paths: string[]): CacheOnChange {
  optionalStrings(paths, "onChange: paths");
  return { kind: "on_change", paths };
}

export function compose(...policies: CachePolicy[]): CacheCompose {
  for (const policy of policies) checkPolicy(policy, "compose");
  return { kind: "compose", policies };
}

function strings(value: unknown): boolean {
  if (!Array.isArray(value)) return false;
  for (const item of value) if (typeof item !== "string") return false;
  return true;
}

/** Whether `value` is a policy of a known kind with the fields that kind has. */
function isPolicy(value: unknown, depth: number): boolean {
  if (typeof value !== "object" || value === null || depth > 64) return false;
  const p = value as Record<string, unknown>;
  switch (p.kind) {
    case "forever":
      return strings(p.envKeys);
    case "ttl":
      return typeof p.durationSeconds === "number" && strings(p.envKeys);
    case "on_change":
      return strings(p.paths);
    case "compose":
      if (!Array.isArray(p.policies)) return false;
      for (const sub of p.policies) if (!isPolicy(sub, depth + 1)) return false;
      return true;
    default:
      return false;
  }
}

/** `value` is a cache policy; `what` names the call it was given to. */
export function checkPolicy(value: unknown, what: string): void {
  if (!isPolicy(value, 0)) {
    throw new TypeError(
      `${what}: cache must be a policy (forever(), ttl(seconds), onChange(...paths) or compose(...)), not ${show(value)}`,
    );
  }
}
