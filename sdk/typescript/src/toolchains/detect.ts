/**
 * Which JavaScript runtime and package manager a project uses, from its
 * package.json (`engines`, `packageManager`) and its lock files.
 */

import { host, join } from "../host.ts";

type Runtime = "node" | "bun" | "deno";
type Pm = "npm" | "pnpm" | "yarn-classic" | "yarn-berry" | "bun";

export interface DetectedToolchain {
  runtime?: Runtime;
  pm?: Pm;
  pmVersion?: string;
}

/** What package.json says: `engines` names the runtime (bun brings its pm), `packageManager` the pm and its version. */
export function detectFromPackageJson(packageJson: Record<string, unknown>): DetectedToolchain {
  const found: DetectedToolchain = {};
  const engines = packageJson.engines;
  if (engines != null && typeof engines === "object") {
    if ("bun" in engines) {
      found.runtime = "bun";
      found.pm = "bun";
    } else if ("deno" in engines) {
      found.runtime = "deno";
    } else if ("node" in engines) {
      found.runtime = "node";
    }
  }
  const manager = packageJson.packageManager;
  if (found.pm == null && typeof manager === "string") {
    const [name, version] = manager.split("@");
    if (name === "pnpm" || name === "bun" || name === "npm") found.pm = name;
    else if (name === "yarn") found.pm = version && parseInt(version, 10) >= 2 ? "yarn-berry" : "yarn-classic";
    if (version) found.pmVersion = version;
  }
  return found;
}

/** What the lock files in a directory say, the first of bun, pnpm, deno, npm and yarn found. */
export function detectFromLockfiles(files: readonly string[]): DetectedToolchain {
  const has = (name: string) => files.includes(name);
  if (has("bun.lock") || has("bun.lockb")) return { pm: "bun", runtime: "bun" };
  if (has("pnpm-lock.yaml")) return { pm: "pnpm" };
  if (has("deno.lock")) return { runtime: "deno" };
  if (has("package-lock.json")) return { pm: "npm" };
  if (has("yarn.lock")) return { pm: "yarn-classic" };
  return {};
}

/** What the project at `path` uses: package.json first, then its lock files; `{}` when nothing says. */
export function detect(path: string): DetectedToolchain {
  let fromPackage: DetectedToolchain = {};
  try {
    fromPackage = detectFromPackageJson(JSON.parse(host().readText(join(path, "package.json"))) as Record<string, unknown>);
  } catch {
    // No package.json, or not JSON.
  }
  let fromLocks: DetectedToolchain = {};
  try {
    fromLocks = detectFromLockfiles(host().list(path).map(([name]) => name));
  } catch {
    // No such directory.
  }
  const found: DetectedToolchain = {};
  const runtime = fromPackage.runtime ?? fromLocks.runtime;
  const pm = fromPackage.pm ?? fromLocks.pm;
  if (runtime != null) found.runtime = runtime;
  if (pm != null) found.pm = pm;
  if (fromPackage.pmVersion != null) found.pmVersion = fromPackage.pmVersion;
  return found;
}
