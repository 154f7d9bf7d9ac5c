/** JavaScript and TypeScript: node, bun or deno, with npm, pnpm, yarn or bun. */

import { HarmontError, show } from "../errors.ts";
import type { Step } from "../step.ts";
import {
  Project,
  SYSTEM_PATH,
  Toolchain,
  baseStep,
  checkVersion,
  dependencyStep,
  installStep,
  joined,
  presetOptions,
  projectPath,
} from "./base.ts";
import type { PresetOptions } from "./base.ts";

/** A JavaScript runtime. */
export type Runtime = "node" | "bun" | "deno";
/** A package manager (`deno` stands for deno's own). */
export type PackageManager = "npm" | "pnpm" | "yarn" | "bun" | "deno";

const RUNTIMES: readonly string[] = ["node", "bun", "deno"];

// How each package manager installs from its lock file, runs a script, and
// which lock files it reads.
const INSTALL: Record<PackageManager, [string, string[]]> = {
  npm: ["npm ci", ["package-lock.json"]],
  pnpm: ["pnpm install --frozen-lockfile", ["pnpm-lock.yaml"]],
  yarn: ["yarn install --immutable", ["yarn.lock"]],
  bun: ["bun install --frozen-lockfile", ["bun.lock", "bun.lockb"]],
  deno: ["deno install", ["deno.lock"]],
};
const RUN: Record<PackageManager, string> = {
  npm: "npm run",
  pnpm: "pnpm run",
  yarn: "yarn run",
  bun: "bun run",
  deno: "deno task",
};
const MANAGER_OF: Record<Runtime, PackageManager> = { node: "npm", bun: "bun", deno: "deno" };
const ALLOWED: Record<Runtime, readonly PackageManager[]> = { node: ["npm", "pnpm", "yarn"], bun: ["bun"], deno: ["deno"] };

export class JsProject extends Project {
  declare readonly manager: PackageManager;
  declare readonly deps: Step;

  constructor(start: Step, path: string, env: Readonly<Record<string, string>>, manager: PackageManager, deps: Step) {
    super(start, path, env);
    this.manager = manager;
    this.deps = deps;
  }

  /** The dependency step itself. */
  install(): Step {
    return this.deps;
  }

  /** `npm run SCRIPT` (or the package manager's equivalent). */
  run(script: string): Step {
    if (typeof script !== "string" || script === "" || /\s/.test(script)) {
      throw new HarmontError(`a script name must be a single word, not ${show(script)}`);
    }
    return this.action(`${RUN[this.manager]} ${script}`, { label: `${this.manager} ${script}` });
  }

  override defaults(): Step[] {
    return [this.run("test")];
  }
}

export class JsToolchain extends Toolchain {
  declare readonly manager: PackageManager;

  constructor(install: Step, env: Readonly<Record<string, string>>, manager: PackageManager) {
    super(install, env);
    this.manager = manager;
  }

  project(path: string = "."): JsProject {
    path = projectPath(path);
    const [cmd, locks] = INSTALL[this.manager];
    const deps = dependencyStep(this.install, cmd, locks.map((lock) => joined(path, lock)), path, cmd, this.env);
    return new JsProject(deps, path, this.env, this.manager, deps);
  }
}

/** Options of `js.toolchain`. */
export interface JsToolchainOptions extends PresetOptions {
  /** npm, pnpm or yarn with node; bun with bun; deno with deno. */
  packageManager?: PackageManager | null;
}

/** Options of `js.project`. */
export interface JsProjectOptions extends JsToolchainOptions {
  /** `"node"` (the default), `"bun"` or `"deno"`. */
  runtime?: Runtime;
  /** The runtime's version: node `"22"`, bun and deno `"latest"` by default. */
  version?: string | null;
}

/** `js` / `ts`: `js.project(".", {runtime: "node", version: "22", packageManager: "pnpm"})`. */
export class Js {
  readonly DEFAULT_VERSIONS: Readonly<Record<Runtime, string>> = { node: "22", bun: "latest", deno: "latest" };

  toolchain(runtime: Runtime = "node", version?: string | null, opts?: JsToolchainOptions): JsToolchain {
    const o = presetOptions(opts, ["packageManager"], "js.toolchain");
    if (typeof runtime !== "string" || !RUNTIMES.includes(runtime)) {
      throw new HarmontError(`unknown JavaScript runtime \`${String(runtime)}\` (use one of ${RUNTIMES.join(", ")})`);
    }
    const checked = checkVersion(version || this.DEFAULT_VERSIONS[runtime], runtime);
    const manager = ((o.packageManager as string | null | undefined) || MANAGER_OF[runtime]) as PackageManager;
    const allowed = ALLOWED[runtime];
    if (!allowed.includes(manager)) {
      throw new HarmontError(`package manager \`${manager}\` does not go with ${runtime} (use ${allowed.join(", ")})`);
    }
    let env: Record<string, string> = { PATH: SYSTEM_PATH };
    const basePackages = ["ca-certificates", "curl", "git"];
    let cmd: string;
    if (runtime === "node") {
      // NodeSource's repository serves every architecture Debian has.
      cmd =
        `curl -fsSL https://deb.nodesource.com/setup_${checked}.x | bash -` +
        " && apt-get install -y nodejs && rm -rf /var/lib/apt/lists/*";
      if (manager === "pnpm" || manager === "yarn") cmd += ` && corepack enable ${manager}`;
    } else if (runtime === "bun") {
      basePackages.push("unzip");
      env = { BUN_INSTALL: "/usr/local/bun", PATH: `/usr/local/bun/bin:${SYSTEM_PATH}` };
      const tag = checked === "latest" ? "" : ` -s bun-v${checked}`;
      cmd = `curl -fsSL https://bun.sh/install | bash${tag}`;
    } else {
      basePackages.push("unzip");
      env = { DENO_INSTALL: "/usr/local/deno", PATH: `/usr/local/deno/bin:${SYSTEM_PATH}` };
      // The release archive for the machine's architecture (x86_64, aarch64); the
      // install script may stop to ask about shell profiles.
      const release = checked === "latest" ? "latest/download" : `download/v${checked}`;
      cmd =
        "mkdir -p /usr/local/deno/bin && curl -fsSL -o /tmp/deno.zip " +
        `"https://github.com/denoland/deno/releases/${release}/deno-$(uname -m)-unknown-linux-gnu.zip"` +
        " && unzip -o -q /tmp/deno.zip -d /usr/local/deno/bin && rm /tmp/deno.zip";
    }
    const start = baseStep(o.base, [...basePackages, ...o.packages], o.image);
    return new JsToolchain(installStep(start, cmd, `${runtime} ${checked}`, env), env, manager);
  }

  project(path: string = ".", opts?: JsProjectOptions): JsProject {
    const o = presetOptions(opts, ["runtime", "version", "packageManager"], "js.project");
    const runtime = o.runtime === undefined ? "node" : (o.runtime as Runtime);
    const toolchain = this.toolchain(runtime, o.version as string | null | undefined, {
      packageManager: o.packageManager as PackageManager | null | undefined,
      image: o.image,
      base: o.base,
      packages: o.packages,
    });
    return toolchain.project(path);
  }
}

export const js = new Js();
/** `js`, for TypeScript projects. */
export const ts = js;
