/**
 * The cache keys Harmont's SDKs write into a cached step's policy
 * (`cache.key`): SHA-256 over the pipeline's organisation and slug, the
 * step's key, its parent's cache key and what its policy depends on. hm
 * computes its own keys when it runs a step; `renderEnvelope` writes these
 * for tools that read Harmont's envelopes.
 */

import { host, join, relative, resolve, sha256Hex } from "./host.ts";
import type { PipelineIR } from "./pipeline.ts";

export interface CacheKeyOptions {
  readonly pipelineOrg: string;
  readonly pipelineSlug: string;
  /** Seconds since the epoch (`ttl` windows count from it). */
  readonly now: number;
  /** What `on_change` paths are relative to. */
  readonly basePath: string;
  readonly env: Readonly<Record<string, string>>;
}

type Policy = Record<string, unknown>;

/**
 * Writes `cache.key` into every cached step of `graph`. A cached step
 * whose parent (`builds_in`) has no key is an error: a cached snapshot
 * cannot build on an uncached one.
 */
export function resolvePipelineCacheKeys(graph: PipelineIR["graph"], opts: CacheKeyOptions): void {
  const stepKeys = graph.nodes.map((node) => node.step.key as string);
  const parentOf = new Map<string, string>();
  for (const [src, dst, kind] of graph.edges) {
    if (kind === "builds_in") parentOf.set(stepKeys[dst] as string, stepKeys[src] as string);
  }
  const cacheKeys = new Map<string, string>();
  for (const { step } of graph.nodes) {
    const cache = step.cache as Policy | undefined;
    if (!cache || cache.policy === "none") continue;
    const cmd = (step.cmd as string | undefined) ?? "";
    const stepKey = step.key as string;
    const parent = parentOf.get(stepKey);
    let parentCacheKey = "scratch";
    if (parent !== undefined) {
      const known = cacheKeys.get(parent);
      if (known === undefined) {
        throw new Error(
          `step references builds_in "${parent}" which has no cached key (parent must be defined upstream and cached)`,
        );
      }
      parentCacheKey = known;
    }
    const key = sha256Hex(
      [opts.pipelineOrg, opts.pipelineSlug, stepKey, parentCacheKey, policyPart(cache, cmd, opts)].join("\0"),
    );
    cache.key = key;
    cacheKeys.set(stepKey, key);
  }
}

/** What a policy adds to its step's key. */
function policyPart(policy: Policy, cmd: string, opts: CacheKeyOptions): string {
  switch (policy.policy) {
    case "none":
      return "none";
    case "forever":
      return `forever-${sha256Hex(cmd, "\0", envPart(policy.env_keys, opts.env))}`;
    case "ttl": {
      const window = Math.floor(opts.now / (policy.duration_seconds as number));
      return `ttl-${window}-${sha256Hex(cmd, "\0", envPart(policy.env_keys, opts.env))}`;
    }
    case "on_change": {
      const files: string[] = [];
      for (const path of [...((policy.paths as string[] | undefined) ?? [])].sort()) {
        if (isGlob(path)) {
          files.push(...globFiles(opts.basePath, path));
        } else {
          const full = resolve(opts.basePath, path);
          if (host().kind(full) !== null) files.push(full);
        }
      }
      return `sha-${sha256Hex(files.map((file) => `${contentHash(file)}\0`).join(""))}`;
    }
    case "compose": {
      const subs = policy.sub_policies as Policy[];
      const parts = subs.map((sub) => (sub.policy === "none" ? "none" : policyPart(sub, cmd, opts)));
      return `compose-${sha256Hex(parts.join(""))}`;
    }
    default:
      throw new Error(`resolve-policy-key: unknown policy "${String(policy.policy)}"`);
  }
}

/** `NAME=value\0` for each of `names`, sorted, from `env` (a missing one is empty). */
function envPart(names: unknown, env: Readonly<Record<string, string>>): string {
  const sorted = [...((names as string[] | undefined) ?? [])].sort();
  return sorted.map((name) => `${name}=${env[name] ?? ""}\0`).join("");
}

function isGlob(path: string): boolean {
  return /[*?[]/.test(path);
}

/** The hash of a file's bytes, or of a directory's files (paths and bytes, sorted by path). */
function contentHash(path: string): string {
  const kind = host().kind(path);
  if (kind === "file") return sha256Hex(host().readBytes(path));
  if (kind === "dir") {
    const parts: Array<string | Uint8Array> = [];
    for (const file of filesUnder(path).sort()) {
      parts.push(relative(path, file).split("\\").join("/"), "\0", host().readBytes(file), "\0");
    }
    return host().sha256(parts);
  }
  throw new Error(`on_change path does not exist: ${path}`);
}

/** Every file under `dir`, recursively, not following symbolic links. */
function filesUnder(dir: string): string[] {
  const out: string[] = [];
  for (const [name, kind] of host().list(dir)) {
    const path = join(dir, name);
    if (kind === "dir") out.push(...filesUnder(path));
    else if (kind === "file") out.push(path);
  }
  return out;
}

/**
 * The files `pattern` matches under `base`, sorted: segment by segment,
 * `*` and `?` within a name, `**` for any depth of directories.
 */
function globFiles(base: string, pattern: string): string[] {
  let candidates = [base];
  for (const segment of pattern.split("/")) {
    const next: string[] = [];
    for (const dir of candidates) {
      if (host().kind(dir) !== "dir") continue;
      if (segment === "**") {
        next.push(dir);
        // Each file's directory, once per file in it.
        for (const file of filesUnder(dir)) next.push(join(file, ".."));
      } else if (isGlob(segment)) {
        const matcher = segmentMatcher(segment);
        for (const [name] of host().list(dir)) {
          if (matcher.test(name)) next.push(join(dir, name));
        }
      } else {
        const path = join(dir, segment);
        if (host().kind(path) !== null) next.push(path);
      }
    }
    candidates = next;
  }
  return candidates.filter((path) => host().kind(path) === "file").sort();
}

/** A name pattern as a regular expression: `*` any run, `?` one character, everything else itself. */
function segmentMatcher(segment: string): RegExp {
  let source = "^";
  for (const ch of segment) {
    if (ch === "*") source += ".*";
    else if (ch === "?") source += ".";
    else source += ch.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  }
  return new RegExp(`${source}$`);
}
