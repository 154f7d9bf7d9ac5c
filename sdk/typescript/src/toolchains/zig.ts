/** Zig: the official release for the machine's architecture, `zig build` actions. */

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

const PACKAGES = ["ca-certificates", "curl", "git", "xz-utils"];
const ENV = { ZIG_GLOBAL_CACHE_DIR: "/root/.cache/zig", PATH: `/usr/local/zig:${SYSTEM_PATH}` };

export class ZigProject extends Project {
  build(): Step {
    return this.action("zig build", { label: "zig build" });
  }

  test(): Step {
    return this.action("zig build test", { label: "zig build test" });
  }

  fmt(): Step {
    return this.action("zig fmt --check .", { label: "zig fmt" });
  }

  override defaults(): Step[] {
    return [this.fmt(), this.build(), this.test()];
  }
}

export class ZigToolchain extends Toolchain {
  project(path: string = "."): ZigProject {
    path = projectPath(path);
    // `zig build --fetch` fills the package cache from build.zig.zon.
    const cmd = "if [ -f build.zig.zon ]; then zig build --fetch; fi";
    const deps = dependencyStep(this.install, cmd, [joined(path, "build.zig.zon")], path, "zig fetch", this.env);
    return new ZigProject(deps, path, this.env);
  }
}

/** Options of `zig.project`. */
export interface ZigProjectOptions extends PresetOptions {
  /** A Zig release: `"0.14.1"` (the default)... */
  version?: string;
}

/** `zig`: `zig.toolchain("0.14.1").project()` or `zig.project()`. */
export class Zig {
  readonly DEFAULT_VERSION = "0.14.1";

  toolchain(version: string = this.DEFAULT_VERSION, opts?: PresetOptions): ZigToolchain {
    const o = presetOptions(opts, [], "zig.toolchain");
    version = checkVersion(version, "Zig");
    const start = baseStep(o.base, [...PACKAGES, ...o.packages], o.image);
    // Zig names its downloads by `uname -m` (x86_64, aarch64): architecture first since
    // 0.14.1, operating system first before.
    const name = since(version, [0n, 14n, 1n]) ? `zig-$(uname -m)-linux-${version}` : `zig-linux-$(uname -m)-${version}`;
    const cmd =
      "mkdir -p /usr/local/zig && " +
      `curl -fsSL "https://ziglang.org/download/${version}/${name}.tar.xz" ` +
      "| tar -C /usr/local/zig --strip-components=1 -xJ";
    return new ZigToolchain(installStep(start, cmd, `zig ${version}`, ENV), ENV);
  }

  project(path: string = ".", opts?: ZigProjectOptions): ZigProject {
    const o = presetOptions(opts, ["version"], "zig.project");
    const version = o.version === undefined ? this.DEFAULT_VERSION : (o.version as string);
    return this.toolchain(version, { image: o.image, base: o.base, packages: o.packages }).project(path);
  }
}

/**
 * Whether `version` (`"0.13.0"`) is `first` or later, comparing the dotted
 * numbers as Python compares tuples; anything unparsable counts as later.
 */
function since(version: string, first: readonly bigint[]): boolean {
  const parts: bigint[] = [];
  for (const part of version.split(".")) {
    // What Python's int() reads: a sign, digits, single underscores between digits.
    if (!/^[+-]?\d+(_\d+)*$/.test(part)) return true;
    parts.push(BigInt(part.replace(/_/g, "").replace(/^\+/, "")));
  }
  for (let i = 0; i < Math.min(parts.length, first.length); i++) {
    const a = parts[i] as bigint;
    const b = first[i] as bigint;
    if (a !== b) return a > b;
  }
  return parts.length >= first.length;
}

export const zig = new Zig();
