/** `py.uv({ path, version })`: a uv project with test, lint, fmt, typecheck, run, build, lockCheck and publish. */

import { allowed, options, optionalString } from "../../options.ts";
import type { Step, StepOptions } from "../../step.ts";
import { PLAIN_ACTION, TYPECHECK_ACTION, typecheckTarget, uvSynced } from "../python.ts";
import { checkPresetBase } from "../shared.ts";

const VERSION = /^([0-9]+\.[0-9]+\.[0-9]+|latest)$/;
const UV_OPTIONS = allowed("path", "version", "image", "base");

export interface UvOptions {
  readonly path?: string;
  readonly version?: string;
  readonly image?: string;
  readonly base?: Step;
}

type ActionOptions = Omit<StepOptions, "cwd">;

export class UvProject {
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

  private _uv(command: string, label: string, opts: Readonly<Record<string, unknown>>): Step {
    return this._installed.sh(`cd ${this.path} && ${command}`, { label, ...opts });
  }

  test(opts?: ActionOptions): Step {
    return this._uv("uv run pytest", ":python: test", PLAIN_ACTION(opts, "uv.test"));
  }

  lint(opts?: ActionOptions): Step {
    return this._uv("uv run ruff check .", ":python: lint", PLAIN_ACTION(opts, "uv.lint"));
  }

  fmt(opts?: ActionOptions): Step {
    return this._uv("uv run ruff format --check .", ":python: fmt", PLAIN_ACTION(opts, "uv.fmt"));
  }

  typecheck(opts?: ActionOptions & { paths?: string | string[] }): Step {
    const { paths, ...rest } = TYPECHECK_ACTION(opts, "uv.typecheck");
    return this._uv(`uv run ty check ${typecheckTarget(paths, "uv.typecheck")}`, ":python: typecheck", rest);
  }

  /** `uv run <cmd>`, labelled with the command's first word. */
  run(cmd: string, opts?: ActionOptions): Step {
    if (typeof cmd !== "string") throw new TypeError(`uv.run: the command must be a string, not ${typeof cmd}`);
    const first = cmd.split(/\s+/)[0] ?? "run";
    return this._uv(`uv run ${cmd}`, `:python: ${first}`, PLAIN_ACTION(opts, "uv.run"));
  }

  build(opts?: ActionOptions): Step {
    return this._uv("uv build", ":python: build", PLAIN_ACTION(opts, "uv.build"));
  }

  lockCheck(opts?: ActionOptions): Step {
    return this._uv("uv lock --check", ":python: lock-check", PLAIN_ACTION(opts, "uv.lockCheck"));
  }

  publish(opts?: ActionOptions): Step {
    return this._uv("uv publish", ":python: publish", PLAIN_ACTION(opts, "uv.publish"));
  }
}

/** uv `version` (default latest) and the project at `path` (default `.`) synced with it. */
export function uv(opts?: UvOptions): UvProject {
  const o = options(opts, UV_OPTIONS, "py.uv");
  optionalString(o.path, "py.uv: path");
  checkPresetBase(o, "py.uv");
  const path = (o.path as string | undefined) ?? ".";
  const version = (o.version as string | undefined) ?? "latest";
  if (!VERSION.test(version)) {
    throw new Error(`py.uv: invalid version "${version}"\n  → use "latest" or a semver like "0.4.18"`);
  }
  return new UvProject(path, uvSynced(path, version, o.image as string | undefined, o.base as Step | undefined));
}
