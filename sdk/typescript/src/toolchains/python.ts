/** Python with uv: `python({ path, uvVersion })`, then test, lint, fmt and typecheck. */

import { forever, onChange } from "../cache.ts";
import { allowed, options, optionalString } from "../options.ts";
import type { Step, StepOptions } from "../step.ts";
import { actionOptions, checkPresetBase, makeInstallChain } from "./shared.ts";

const APT_PACKAGES = ["curl", "ca-certificates", "python3", "python3-venv"];
const UV_VERSION = /^([0-9]+\.[0-9]+\.[0-9]+|latest)$/;
const PYTHON_OPTIONS = allowed("path", "uvVersion", "image", "base");

export interface PythonOptions {
  readonly path?: string;
  readonly uvVersion?: string;
  readonly image?: string;
  readonly base?: Step;
}

type ActionOptions = Omit<StepOptions, "cwd">;

/** @internal uv `version` installed on `base` or an apt base, then `uv sync` of the project at `path`. */
export function uvSynced(path: string, version: string, image: string | undefined, base: Step | undefined): Step {
  const installCmd = [
    `${version === "latest" ? "" : `UV_VERSION=${version} `}curl -LsSf https://astral.sh/uv/install.sh | sh`,
    "ln -sf /root/.local/bin/uv /usr/local/bin/uv",
    "uv --version",
  ].join(" && ");
  const installed = makeInstallChain({
    aptPackages: APT_PACKAGES,
    installCmd,
    installCache: forever(),
    langTag: "python",
    installTag: "uv-install",
    image,
    base,
  });
  return installed.sh(`cd ${path} && uv sync --all-extras`, {
    label: ":python: uv-sync",
    cache: onChange(`${path}/uv.lock`, `${path}/pyproject.toml`),
  });
}

/** @internal The actions both Python presets have. */
export const PLAIN_ACTION = actionOptions();
/** @internal `typecheck`'s options. */
export const TYPECHECK_ACTION = actionOptions("paths");

/** @internal What `typecheck` checks: `paths` joined, `.` by default. */
export function typecheckTarget(paths: unknown, what: string): string {
  if (paths === undefined || paths === null) return ".";
  if (Array.isArray(paths)) return paths.join(" ");
  optionalString(paths, `${what}: paths`);
  return paths as string;
}

export class PythonToolchain {
  readonly path: string;
  private readonly _installed: Step;

  constructor(path: string, installed: Step) {
    this.path = path;
    this._installed = installed;
  }

  /** The `uv sync` step; actions build on it. */
  install(): Step {
    return this._installed;
  }

  /** A toolchain whose actions build on `cmd`, run after the sync. */
  setup(cmd: string, opts?: StepOptions): PythonToolchain {
    return new PythonToolchain(this.path, this._installed.sh(cmd, opts));
  }

  test(opts?: ActionOptions): Step {
    return this._installed.sh(`cd ${this.path} && uv run pytest`, { label: ":python: test", ...PLAIN_ACTION(opts, "python.test") });
  }

  lint(opts?: ActionOptions): Step {
    return this._installed.sh(`cd ${this.path} && uv run ruff check .`, {
      label: ":python: lint",
      ...PLAIN_ACTION(opts, "python.lint"),
    });
  }

  fmt(opts?: ActionOptions): Step {
    return this._installed.sh(`cd ${this.path} && uv run ruff format --check .`, {
      label: ":python: fmt",
      ...PLAIN_ACTION(opts, "python.fmt"),
    });
  }

  typecheck(opts?: ActionOptions & { paths?: string | string[] }): Step {
    const { paths, ...rest } = TYPECHECK_ACTION(opts, "python.typecheck");
    return this._installed.sh(`cd ${this.path} && uv run ty check ${typecheckTarget(paths, "python.typecheck")}`, {
      label: ":python: typecheck",
      ...rest,
    });
  }
}

/** uv (`uvVersion`, default latest) and the project at `path` (default `.`) synced with it. */
export function python(opts?: PythonOptions): PythonToolchain {
  const o = options(opts, PYTHON_OPTIONS, "python");
  optionalString(o.path, "python: path");
  checkPresetBase(o, "python");
  const path = (o.path as string | undefined) ?? ".";
  const uvVersion = (o.uvVersion as string | undefined) ?? "latest";
  if (!UV_VERSION.test(uvVersion)) {
    throw new Error(`hm.python: invalid uv version "${uvVersion}"\n  → use "latest" or a semver like "0.2.0"`);
  }
  return new PythonToolchain(path, uvSynced(path, uvVersion, o.image as string | undefined, o.base as Step | undefined));
}
