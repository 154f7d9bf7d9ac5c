/**
 * JavaScript and TypeScript: `js.project({ path, runtime, pm, version })`
 * (`ts` is the same). Node, Bun or Deno on an apt base, the package
 * manager where the runtime does not bring it, then the dependencies
 * (cached on the lock file); `run(script)` runs a package.json script or
 * deno task. Without `runtime` and `pm` both are read from the project
 * (see `detect`).
 */

import { forever, onChange } from "../cache.ts";
import { allowed, options, optionalString, show } from "../options.ts";
import type { Step, StepOptions } from "../step.ts";
import { detect } from "./detect.ts";
import { actionOptions, bunInstallCmd, checkPresetBase, denoInstallCmd, makeInstallChain, nodeInstallCmd } from "./shared.ts";

type Runtime = "node" | "bun" | "deno";
type PackageManager = "npm" | "pnpm" | "yarn-classic" | "yarn-berry" | "bun" | "deno";
type ActionOptions = Omit<StepOptions, "cwd">;

export interface JsOptions {
  readonly path?: string;
  readonly pm?: PackageManager;
  readonly runtime?: Runtime;
  /** The runtime's version: Node's major (`"22"`, `"22.x"`), or Bun's or Deno's semver. */
  readonly version?: string;
  readonly image?: string;
  readonly base?: Step;
}

const RUNTIMES: readonly string[] = ["node", "bun", "deno"];
const MANAGERS: readonly string[] = ["npm", "pnpm", "yarn-classic", "yarn-berry", "bun", "deno"];
const NODE_VERSION = /^[0-9]+(\.x)?$/;
const SEMVER = /^[0-9]+\.[0-9]+(\.[0-9]+)?$/;
const JS_OPTIONS = allowed("path", "pm", "runtime", "version", "image", "base");
const RUN = actionOptions();

interface Manager {
  lockfile: string;
  install: string;
  run: string;
}

const MANAGER: Readonly<Record<PackageManager, Manager>> = {
  npm: { lockfile: "package-lock.json", install: "npm ci", run: "npm run" },
  pnpm: { lockfile: "pnpm-lock.yaml", install: "pnpm install --frozen-lockfile", run: "pnpm run" },
  "yarn-classic": { lockfile: "yarn.lock", install: "yarn install --frozen-lockfile", run: "yarn run" },
  "yarn-berry": { lockfile: "yarn.lock", install: "yarn install --immutable", run: "yarn run" },
  bun: { lockfile: "bun.lock", install: "bun install --frozen-lockfile", run: "bun run" },
  deno: { lockfile: "deno.lock", install: "deno install", run: "deno task" },
};

/** The command that brings `pm` onto `runtime`, or `null` when the runtime ships it. */
function bootstrap(pm: PackageManager, runtime: Runtime, version: string | undefined): string | null {
  switch (pm) {
    case "npm":
    case "deno":
      return null;
    case "bun":
      return runtime === "bun" ? null : bunInstallCmd();
    case "pnpm":
      return version != null ? `corepack enable pnpm && corepack install -g pnpm@${version}` : "corepack enable pnpm";
    case "yarn-classic":
    case "yarn-berry":
      return version != null ? `corepack enable yarn && corepack install -g yarn@${version}` : "corepack enable";
  }
}

export class JsProject {
  readonly path: string;
  private readonly _installed: Step;
  private readonly _runPrefix: string;
  private readonly _tag: string;
  private readonly _pm: PackageManager;

  constructor(path: string, installed: Step, pm: PackageManager, tag: string) {
    this.path = path;
    this._installed = installed;
    this._runPrefix = MANAGER[pm].run;
    this._tag = tag;
    this._pm = pm;
  }

  /** The dependency install step (`npm ci`, `bun install`, ...); every action builds on it. */
  install(): Step {
    return this._installed;
  }

  /** A project whose actions build on `cmd`, run after the dependencies (code generation, say). */
  setup(cmd: string, opts?: StepOptions): JsProject {
    return new JsProject(this.path, this._installed.sh(cmd, opts), this._pm, this._tag);
  }

  /** The package.json script (or deno task) `script`, labelled `:<runtime>: <script>`. */
  run(script: string, opts?: ActionOptions): Step {
    optionalString(script, "js.run: script");
    return this._installed.sh(`cd ${this.path} && ${this._runPrefix} ${script}`, {
      label: `:${this._tag}: ${script}`,
      ...RUN(opts, "js.run"),
    });
  }
}

function checkVersion(runtime: Runtime, version: string): void {
  if (runtime === "node") {
    if (!NODE_VERSION.test(version)) {
      throw new Error(`js.project: invalid version "${version}"\n  → use a Node major version like "22" or "22.x"`);
    }
  } else if (!SEMVER.test(version)) {
    throw new Error(`js.project: invalid version "${version}"\n  → use a semver version like "1.2" or "1.2.0"`);
  }
}

function project(opts?: JsOptions): JsProject {
  const o = options(opts, JS_OPTIONS, "js.project");
  optionalString(o.path, "js.project: path");
  checkPresetBase(o, "js.project");
  if (o.runtime != null && !RUNTIMES.includes(o.runtime as string)) {
    throw new TypeError(`js.project: runtime must be "node", "bun" or "deno", not ${show(o.runtime)}`);
  }
  if (o.pm != null && !MANAGERS.includes(o.pm as string)) {
    throw new TypeError(`js.project: pm must be one of ${MANAGERS.map((m) => `"${m}"`).join(", ")}, not ${show(o.pm)}`);
  }
  const path = (o.path as string | undefined) ?? ".";
  const detected = o.runtime == null && o.pm == null ? detect(path) : {};
  const runtime = (o.runtime as Runtime | undefined) ?? detected.runtime ?? "node";
  const version = o.version as string | undefined;
  if (version != null) checkVersion(runtime, version);
  const image = o.image as string | undefined;
  const base = o.base as Step | undefined;

  if (runtime === "deno") {
    if (o.pm != null) throw new Error('js.project: runtime="deno" manages its own dependencies — do not set pm');
    const deno = makeInstallChain({
      aptPackages: ["curl", "ca-certificates", "unzip"],
      installCmd: denoInstallCmd(version),
      installCache: forever(),
      langTag: "deno",
      installTag: "install",
      image,
      base,
    });
    const deps = deno.sh(`cd ${path} && ${MANAGER.deno.install}`, {
      label: ":deno: deps",
      cache: onChange(`${path}/${MANAGER.deno.lockfile}`),
    });
    return new JsProject(path, deps, "deno", "deno");
  }

  const pm: PackageManager = (o.pm as PackageManager | undefined) ?? detected.pm ?? (runtime === "bun" ? "bun" : "npm");
  if (pm === "deno") throw new Error('js.project: pm="deno" is not valid — use runtime="deno" instead');
  if (runtime === "bun" && pm !== "bun") throw new Error('js.project: runtime="bun" only supports pm="bun"');
  const tag = runtime === "bun" ? "bun" : "node";
  const installed = makeInstallChain({
    // bun's installer needs unzip.
    aptPackages: runtime === "bun" || pm === "bun" ? ["curl", "ca-certificates", "unzip"] : ["curl", "ca-certificates"],
    installCmd: runtime === "bun" ? bunInstallCmd(version) : nodeInstallCmd(version ?? "22"),
    installCache: forever(),
    langTag: tag,
    installTag: "install",
    image,
    base,
  });
  const pmVersion = detected.pmVersion;
  const bring = bootstrap(pm, runtime, pmVersion);
  const ready =
    bring === null
      ? installed
      : installed.sh(bring, {
          label: `:${tag}: ${pm}`,
          cache: pmVersion != null ? onChange(`${path}/package.json`) : forever(),
        });
  const deps = ready.sh(`cd ${path} && ${MANAGER[pm].install}`, {
    label: `:${tag}: deps`,
    cache: onChange(`${path}/${MANAGER[pm].lockfile}`),
  });
  return new JsProject(path, deps, pm, tag);
}

export const js = { project };
export const ts = js;
