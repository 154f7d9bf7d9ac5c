/**
 * Zig: `zig()` is a toolchain, whose `project(path)` gives projects
 * sharing its install; `zig({ path })` is such a project directly. A
 * project builds, tests and checks formatting.
 */

import { forever } from "../cache.ts";
import { allowed, options, optionalString } from "../options.ts";
import type { Step, StepOptions } from "../step.ts";
import { actionOptions, checkPresetBase, makeInstallChain } from "./shared.ts";

const APT_PACKAGES = ["curl", "ca-certificates", "xz-utils"];
const VERSION = /^[0-9]+\.[0-9]+\.[0-9]+$/;
/** The first release whose download is named `zig-<arch>-<os>-<version>`. */
const RENAMED_IN: readonly number[] = [0, 14, 1];
const ZIG_OPTIONS = allowed("path", "version", "image", "base");
const ACTION = actionOptions();

export interface ZigOptions {
  readonly path?: string;
  readonly version?: string;
  readonly image?: string;
  readonly base?: Step;
}

type ActionOptions = Omit<StepOptions, "cwd">;

/** Whether `version` comes at or after `from`. */
function atLeast(version: string, from: readonly number[]): boolean {
  const parts = version.split(".").map(Number);
  for (let i = 0; i < from.length; i++) {
    const part = parts[i] ?? 0;
    const floor = from[i] as number;
    if (part !== floor) return part > floor;
  }
  return true;
}

export class ZigToolchain {
  private readonly _installed: Step;

  constructor(installed: Step) {
    this._installed = installed;
  }

  /** The step that installed Zig. */
  install(): Step {
    return this._installed;
  }

  /** A toolchain whose projects build on `cmd`, run after the install. */
  setup(cmd: string, opts?: StepOptions): ZigToolchain {
    return new ZigToolchain(this._installed.sh(cmd, opts));
  }

  /** The project at `path`, built with this toolchain. */
  project(path: string = "."): ZigProject {
    optionalString(path, "zig.project: path");
    return new ZigProject(path, this._installed);
  }
}

export class ZigProject {
  readonly path: string;
  private readonly _installed: Step;

  constructor(path: string, installed: Step) {
    this.path = path;
    this._installed = installed;
  }

  /** The step that installed Zig (or the last setup step); actions build on it. */
  install(): Step {
    return this._installed;
  }

  /** A project whose actions build on `cmd`, run after the install. */
  setup(cmd: string, opts?: StepOptions): ZigProject {
    return new ZigProject(this.path, this._installed.sh(cmd, opts));
  }

  private _zig(command: string, action: string, opts: ActionOptions | undefined): Step {
    return this._installed.sh(`cd ${this.path} && ${command}`, {
      label: `:zig: ${this.path} ${action}`,
      ...ACTION(opts, `zig.${action}`),
    });
  }

  build(opts?: ActionOptions): Step {
    return this._zig("zig build", "build", opts);
  }

  test(opts?: ActionOptions): Step {
    return this._zig("zig build test", "test", opts);
  }

  fmt(opts?: ActionOptions): Step {
    return this._zig("zig fmt --check .", "fmt", opts);
  }
}

export function zig(opts: ZigOptions & { path: string }): ZigProject;
export function zig(opts?: ZigOptions): ZigToolchain;
/** Zig `version` (default 0.14.1) on an apt base: a toolchain, or with `path` a project. */
export function zig(opts?: ZigOptions): ZigToolchain | ZigProject {
  const o = options(opts, ZIG_OPTIONS, "zig");
  optionalString(o.path, "zig: path");
  checkPresetBase(o, "zig");
  const version = (o.version as string | undefined) ?? "0.14.1";
  if (!VERSION.test(version)) {
    throw new Error(`hm.zig: invalid version "${version}"\n  → use a semver like "0.14.1"`);
  }
  const tarball = atLeast(version, RENAMED_IN) ? `zig-x86_64-linux-${version}.tar.xz` : `zig-linux-x86_64-${version}.tar.xz`;
  const installCmd = [
    `curl -fsSL https://ziglang.org/download/${version}/${tarball} -o /tmp/zig.tar.xz`,
    "rm -rf /usr/local/zig && mkdir -p /usr/local/zig",
    "tar -xJf /tmp/zig.tar.xz -C /usr/local/zig --strip-components=1",
    "ln -sf /usr/local/zig/zig /usr/local/bin/zig",
    "zig version",
  ].join(" && ");
  const installed = makeInstallChain({
    aptPackages: APT_PACKAGES,
    installCmd,
    installCache: forever(),
    langTag: "zig",
    installTag: "install",
    image: o.image as string | undefined,
    base: o.base as Step | undefined,
  });
  const toolchain = new ZigToolchain(installed);
  return o.path != null ? toolchain.project(o.path as string) : toolchain;
}
