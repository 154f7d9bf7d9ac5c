/** Rust: rustup's toolchain, `cargo fetch` on `Cargo.lock`, cargo actions. */

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

const PACKAGES = ["build-essential", "ca-certificates", "curl", "git", "libssl-dev", "pkg-config"];
const ENV = {
  CARGO_HOME: "/usr/local/cargo",
  RUSTUP_HOME: "/usr/local/rustup",
  PATH: `/usr/local/cargo/bin:${SYSTEM_PATH}`,
  CARGO_TERM_COLOR: "never",
};

export class RustProject extends Project {
  build(): Step {
    return this.action("cargo build --workspace --all-targets", { label: "cargo build" });
  }

  test(): Step {
    return this.action("cargo test --workspace", { label: "cargo test" });
  }

  doctest(): Step {
    return this.action("cargo test --workspace --doc", { label: "cargo doctest" });
  }

  clippy(): Step {
    return this.action("cargo clippy --workspace --all-targets -- -D warnings", { label: "cargo clippy" });
  }

  fmt(): Step {
    return this.action("cargo fmt --all -- --check", { label: "cargo fmt" });
  }

  doc(): Step {
    return this.action("cargo doc --workspace --no-deps", { label: "cargo doc" });
  }

  ci(): Step[] {
    return [this.fmt(), this.clippy(), this.build(), this.test(), this.doctest()];
  }

  override defaults(): Step[] {
    return this.ci();
  }
}

export class RustToolchain extends Toolchain {
  project(path: string = "."): RustProject {
    path = projectPath(path);
    const deps = dependencyStep(this.install, "cargo fetch", [joined(path, "Cargo.lock")], path, "cargo fetch", this.env);
    return new RustProject(deps, path, this.env);
  }
}

/** Options of `rust.project`. */
export interface RustProjectOptions extends PresetOptions {
  /** A rustup toolchain: `"stable"` (the default), `"nightly"`, `"1.83.0"`... */
  version?: string;
}

/** `rust`: `rust.toolchain("1.83.0").project("crates/app")` or `rust.project()`. */
export class Rust {
  readonly DEFAULT_VERSION = "stable";

  toolchain(version: string = this.DEFAULT_VERSION, opts?: PresetOptions): RustToolchain {
    const o = presetOptions(opts, [], "rust.toolchain");
    version = checkVersion(version, "Rust");
    const start = baseStep(o.base, [...PACKAGES, ...o.packages], o.image);
    const cmd =
      "curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --no-modify-path " +
      `--profile minimal --default-toolchain ${version} --component clippy,rustfmt`;
    return new RustToolchain(installStep(start, cmd, `rust ${version}`, ENV), ENV);
  }

  project(path: string = ".", opts?: RustProjectOptions): RustProject {
    const o = presetOptions(opts, ["version"], "rust.project");
    const version = o.version === undefined ? this.DEFAULT_VERSION : (o.version as string);
    return this.toolchain(version, { image: o.image, base: o.base, packages: o.packages }).project(path);
  }
}

export const rust = new Rust();
