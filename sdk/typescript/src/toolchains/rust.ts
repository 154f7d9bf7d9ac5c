/**
 * Rust: `rust.toolchain()` (rustup on an apt base, with cargo actions) and
 * `rust.project()` (the same, with a cached warm-up build that test,
 * clippy, doc and build fork from).
 */

import { forever, onChange } from "../cache.ts";
import type { CachePolicy } from "../cache.ts";
import { allowed, options, optionalBoolean, optionalString, optionalStrings } from "../options.ts";
import type { Step, StepOptions } from "../step.ts";
import { CARGO_OPTIONS, cargoFlags, shQuote } from "./cargo.ts";
import type { CargoOpts } from "./cargo.ts";
import { actionOptions, checkPresetBase, makeInstallChain } from "./shared.ts";

const APT_PACKAGES = ["curl", "ca-certificates", "build-essential", "pkg-config", "libssl-dev"];
const VERSION = /^[a-z0-9.-]+$/;
const TOOLCHAIN_OPTIONS = allowed("path", "version", "image", "components", "base");
const PROJECT_OPTIONS = allowed("path", "version", "image", "components", "base", "cache");

export interface RustToolchainOptions {
  readonly path?: string;
  readonly version?: string;
  readonly image?: string;
  readonly components?: readonly string[];
  readonly base?: Step;
}

export interface RustProjectOptions extends RustToolchainOptions {
  readonly cache?: CachePolicy;
}

type ActionOptions = Omit<StepOptions, "cwd">;
type CargoActionOptions = CargoOpts & ActionOptions;

export interface FeaturePowersetOptions extends ActionOptions {
  readonly subcommand?: string;
  readonly depth?: number;
  readonly eachFeature?: boolean;
  readonly noDevDeps?: boolean;
  readonly skip?: readonly string[];
  readonly includeFeatures?: readonly string[];
  readonly keepGoing?: boolean;
  readonly flags?: readonly string[];
}

type Options = Readonly<Record<string, unknown>>;

const BUILD = actionOptions(...CARGO_OPTIONS, "addTarget");
const TEST = actionOptions(...CARGO_OPTIONS, "addTarget", "nextest");
const CLIPPY = actionOptions(...CARGO_OPTIONS, "addTarget", "denyWarnings", "extraLints");
const DOC = actionOptions(...CARGO_OPTIONS, "addTarget", "noDeps", "documentPrivateItems", "denyWarnings");
const FMT = actionOptions("all", "check", "flags");
const WARMUP = actionOptions();
const POWERSET = actionOptions(
  "subcommand",
  "depth",
  "eachFeature",
  "noDevDeps",
  "skip",
  "includeFeatures",
  "keepGoing",
  "flags",
);
const CI_OPTIONS = allowed("nextest", "doc");

/**
 * `o` split into its cargo options (checked) and the rest, with
 * `defaults` under what was given. `own` names the action's other
 * options, which go to neither.
 */
function split(o: Options, defaults: CargoOpts, own: readonly string[], what: string): [CargoOpts, Options] {
  const cargo: Record<string, unknown> = { ...defaults };
  const step: Record<string, unknown> = {};
  for (const name of Object.keys(o)) {
    if ((CARGO_OPTIONS as readonly string[]).includes(name)) cargo[name] = o[name] ?? undefined;
    else if (!own.includes(name)) step[name] = o[name];
  }
  for (const name of ["workspace", "allFeatures", "noDefaultFeatures", "allTargets", "release", "locked"]) {
    optionalBoolean(cargo[name], `${what}: ${name}`);
  }
  for (const name of ["packages", "exclude", "features", "flags"]) optionalStrings(cargo[name], `${what}: ${name}`);
  optionalString(cargo.target, `${what}: target`);
  optionalString(cargo.profile, `${what}: profile`);
  return [cargo as CargoOpts, step];
}

function buildCmd(c: CargoOpts): string {
  return `cargo build${cargoFlags(c)}`;
}

function testCmd(c: CargoOpts, nextest: boolean): string {
  return `${nextest ? "cargo nextest run" : "cargo test"}${cargoFlags(c)}`;
}

function doctestCmd(c: CargoOpts): string {
  return `cargo test${cargoFlags(c)} --doc`;
}

function clippyCmd(c: CargoOpts, denyWarnings: boolean, extraLints: readonly string[]): string {
  const lints = denyWarnings ? ["-D warnings", ...extraLints] : [...extraLints];
  return `cargo clippy${cargoFlags(c)}${lints.length > 0 ? ` -- ${lints.join(" ")}` : ""}`;
}

function fmtCmd(all: boolean, check: boolean, flags: readonly string[]): string {
  return ["cargo fmt", ...(all ? ["--all"] : []), ...(check ? ["--check"] : []), ...flags].join(" ");
}

function docCmd(c: CargoOpts, noDeps: boolean, privateItems: boolean): string {
  const own = [...(noDeps ? ["--no-deps"] : []), ...(privateItems ? ["--document-private-items"] : [])];
  return `cargo doc${own.length > 0 ? ` ${own.join(" ")}` : ""}${cargoFlags(c)}`;
}

function hackCmd(o: Options): string {
  const words = ["cargo hack", (o.subcommand as string | undefined) ?? "check"];
  if (o.eachFeature) words.push("--each-feature");
  else words.push("--feature-powerset", "--depth", String((o.depth as number | undefined) ?? 2));
  if ((o.noDevDeps as boolean | undefined) ?? true) words.push("--no-dev-deps");
  const skip = o.skip as readonly string[] | undefined;
  if (skip?.length) words.push(`--skip ${skip.map(shQuote).join(",")}`);
  const include = o.includeFeatures as readonly string[] | undefined;
  if (include?.length) words.push(`--include-features ${include.map(shQuote).join(",")}`);
  if (o.keepGoing) words.push("--keep-going");
  words.push(...((o.flags as readonly string[] | undefined) ?? []));
  return words.join(" ");
}

/** The step options with `RUSTDOCFLAGS=-D warnings` under the step's own env, when `deny`. */
function docEnv(step: Options, deny: boolean): Options {
  if (!deny) return step;
  return { ...step, env: { RUSTDOCFLAGS: "-D warnings", ...((step.env as Record<string, string> | undefined) ?? {}) } };
}

/** `cmd`, after adding the rustup target when building for one (unless `addTarget` is false). */
function withTarget(cmd: string, target: string | undefined, addTarget: boolean): string {
  return target !== undefined && addTarget ? `rustup target add ${shQuote(target)} && ${cmd}` : cmd;
}

function flag(o: Options, name: string, fallback: boolean, what: string): boolean {
  optionalBoolean(o[name], `${what}: ${name}`);
  return (o[name] as boolean | undefined) ?? fallback;
}

export class RustToolchain {
  readonly path: string;
  private readonly _installed: Step;

  constructor(path: string, installed: Step) {
    this.path = path;
    this._installed = installed;
  }

  /** The step that installed Rust; actions build on it. */
  install(): Step {
    return this._installed;
  }

  /** A toolchain whose actions build on `cmd`, run after the install (extra tools, code generation). */
  setup(cmd: string, opts?: StepOptions): RustToolchain {
    return new RustToolchain(this.path, this._installed.sh(cmd, opts));
  }

  /** @internal `cmd` in the crate's directory with cargo on the path, on the install step. */
  _cargo(cmd: string, label: string, opts?: ActionOptions): Step {
    return this._installed.sh(`. $HOME/.cargo/env && cd ${this.path} && ${cmd}`, { label, ...opts });
  }

  build(opts?: CargoActionOptions & { addTarget?: boolean }): Step {
    const o = BUILD(opts, "rust.build");
    const [cargo, step] = split(o, {}, ["addTarget"], "rust.build");
    const cmd = withTarget(buildCmd(cargo), cargo.target, flag(o, "addTarget", true, "rust.build"));
    return this._cargo(cmd, ":rust: build", step);
  }

  test(opts?: CargoActionOptions & { nextest?: boolean; addTarget?: boolean }): Step {
    const o = TEST(opts, "rust.test");
    const [cargo, step] = split(o, {}, ["addTarget", "nextest"], "rust.test");
    const cmd = withTarget(
      testCmd(cargo, flag(o, "nextest", false, "rust.test")),
      cargo.target,
      flag(o, "addTarget", true, "rust.test"),
    );
    return this._cargo(cmd, ":rust: test", step);
  }

  doctest(opts?: CargoActionOptions & { addTarget?: boolean }): Step {
    const o = BUILD(opts, "rust.doctest");
    const [cargo, step] = split(o, {}, ["addTarget"], "rust.doctest");
    const cmd = withTarget(doctestCmd(cargo), cargo.target, flag(o, "addTarget", true, "rust.doctest"));
    return this._cargo(cmd, ":rust: doctest", step);
  }

  clippy(opts?: CargoActionOptions & { denyWarnings?: boolean; extraLints?: readonly string[]; addTarget?: boolean }): Step {
    const o = CLIPPY(opts, "rust.clippy");
    const [cargo, step] = split(o, { allTargets: true }, ["addTarget", "denyWarnings", "extraLints"], "rust.clippy");
    optionalStrings(o.extraLints, "rust.clippy: extraLints");
    const lints = clippyCmd(cargo, flag(o, "denyWarnings", true, "rust.clippy"), (o.extraLints as string[] | undefined) ?? []);
    return this._cargo(withTarget(lints, cargo.target, flag(o, "addTarget", true, "rust.clippy")), ":rust: clippy", step);
  }

  fmt(opts?: ActionOptions & { all?: boolean; check?: boolean; flags?: readonly string[] }): Step {
    const o = FMT(opts, "rust.fmt");
    optionalStrings(o.flags, "rust.fmt: flags");
    const { all: _all, check: _check, flags, ...step } = o;
    const cmd = fmtCmd(flag(o, "all", true, "rust.fmt"), flag(o, "check", true, "rust.fmt"), (flags as string[] | undefined) ?? []);
    return this._cargo(cmd, ":rust: fmt", step);
  }

  doc(
    opts?: CargoActionOptions & {
      noDeps?: boolean;
      documentPrivateItems?: boolean;
      denyWarnings?: boolean;
      addTarget?: boolean;
    },
  ): Step {
    const o = DOC(opts, "rust.doc");
    const [cargo, step] = split(o, {}, ["addTarget", "noDeps", "documentPrivateItems", "denyWarnings"], "rust.doc");
    const cmd = docCmd(cargo, flag(o, "noDeps", true, "rust.doc"), flag(o, "documentPrivateItems", false, "rust.doc"));
    return this._cargo(
      withTarget(cmd, cargo.target, flag(o, "addTarget", true, "rust.doc")),
      ":rust: doc",
      docEnv(step, flag(o, "denyWarnings", true, "rust.doc")),
    );
  }

  /** `cargo build --workspace --tests --locked`: dependencies and tests compiled once for later steps. */
  warmup(opts?: ActionOptions): Step {
    return this._cargo("cargo build --workspace --tests --locked", ":rust: warmup", WARMUP(opts, "rust.warmup"));
  }

  /** `cargo hack` over feature combinations, on a step installing cargo-hack. */
  featurePowerset(opts?: FeaturePowersetOptions): Step {
    const o = POWERSET(opts, "rust.featurePowerset");
    optionalString(o.subcommand, "rust.featurePowerset: subcommand");
    for (const name of ["skip", "includeFeatures", "flags"]) optionalStrings(o[name], `rust.featurePowerset: ${name}`);
    const step: Record<string, unknown> = {};
    for (const name of Object.keys(o)) {
      if (!POWERSET_OWN.includes(name)) step[name] = o[name];
    }
    // Installed globally, not in the crate: one cache entry whatever the path.
    const hack = this._installed.sh(". $HOME/.cargo/env && cargo install cargo-hack --locked", {
      label: ":rust: install cargo-hack",
      cache: forever(),
    });
    return hack.sh(`. $HOME/.cargo/env && cd ${this.path} && ${hackCmd(o)}`, {
      label: ":rust: feature-powerset",
      ...step,
    });
  }
}

const POWERSET_OWN = ["subcommand", "depth", "eachFeature", "noDevDeps", "skip", "includeFeatures", "keepGoing", "flags"];

export class RustProject {
  readonly toolchain: RustToolchain;
  readonly warmup: Step;

  constructor(toolchain: RustToolchain, warmup: Step) {
    this.toolchain = toolchain;
    this.warmup = warmup;
  }

  private _emit(cmd: string, label: string, step: Options): Step {
    return this.warmup.sh(`. $HOME/.cargo/env && cd ${this.toolchain.path} && ${cmd}`, { label, ...step });
  }

  build(opts?: CargoActionOptions & { addTarget?: boolean }): Step {
    const o = BUILD(opts, "rust.build");
    const [cargo, step] = split(o, { workspace: true }, ["addTarget"], "rust.build");
    return this._emit(withTarget(buildCmd(cargo), cargo.target, flag(o, "addTarget", true, "rust.build")), ":rust: build", step);
  }

  test(opts?: CargoActionOptions & { nextest?: boolean; addTarget?: boolean }): Step {
    const o = TEST(opts, "rust.test");
    const [cargo, step] = split(o, { workspace: true }, ["addTarget", "nextest"], "rust.test");
    const cmd = withTarget(
      testCmd(cargo, flag(o, "nextest", false, "rust.test")),
      cargo.target,
      flag(o, "addTarget", true, "rust.test"),
    );
    return this._emit(cmd, ":rust: test", step);
  }

  doctest(opts?: CargoActionOptions & { addTarget?: boolean }): Step {
    const o = BUILD(opts, "rust.doctest");
    const [cargo, step] = split(o, { workspace: true }, ["addTarget"], "rust.doctest");
    return this._emit(
      withTarget(doctestCmd(cargo), cargo.target, flag(o, "addTarget", true, "rust.doctest")),
      ":rust: doctest",
      step,
    );
  }

  clippy(opts?: CargoActionOptions & { denyWarnings?: boolean; extraLints?: readonly string[]; addTarget?: boolean }): Step {
    const o = CLIPPY(opts, "rust.clippy");
    const [cargo, step] = split(
      o,
      { workspace: true, allTargets: true },
      ["addTarget", "denyWarnings", "extraLints"],
      "rust.clippy",
    );
    optionalStrings(o.extraLints, "rust.clippy: extraLints");
    const lints = clippyCmd(cargo, flag(o, "denyWarnings", true, "rust.clippy"), (o.extraLints as string[] | undefined) ?? []);
    return this._emit(withTarget(lints, cargo.target, flag(o, "addTarget", true, "rust.clippy")), ":rust: clippy", step);
  }

  /** `cargo fmt` needs no build: it forks from the install step, not the warm-up. */
  fmt(opts?: ActionOptions & { all?: boolean; check?: boolean; flags?: readonly string[] }): Step {
    return this.toolchain.fmt(opts);
  }

  doc(
    opts?: CargoActionOptions & {
      noDeps?: boolean;
      documentPrivateItems?: boolean;
      denyWarnings?: boolean;
      addTarget?: boolean;
    },
  ): Step {
    const o = DOC(opts, "rust.doc");
    const [cargo, step] = split(
      o,
      { workspace: true },
      ["addTarget", "noDeps", "documentPrivateItems", "denyWarnings"],
      "rust.doc",
    );
    const cmd = docCmd(cargo, flag(o, "noDeps", true, "rust.doc"), flag(o, "documentPrivateItems", false, "rust.doc"));
    return this._emit(
      withTarget(cmd, cargo.target, flag(o, "addTarget", true, "rust.doc")),
      ":rust: doc",
      docEnv(step, flag(o, "denyWarnings", true, "rust.doc")),
    );
  }

  featurePowerset(opts?: FeaturePowersetOptions): Step {
    return this.toolchain.featurePowerset(opts);
  }

  /** The usual checks: test (with doctests apart under nextest), clippy, fmt, and doc when asked. */
  ci(opts?: { nextest?: boolean; doc?: boolean }): Step[] {
    const o = options(opts, CI_OPTIONS, "rust.ci");
    const nextest = flag(o, "nextest", false, "rust.ci");
    const steps = [this.test({ nextest })];
    if (nextest) steps.push(this.doctest());
    steps.push(this.clippy(), this.fmt());
    if (flag(o, "doc", false, "rust.ci")) steps.push(this.doc());
    return steps;
  }
}

function makeToolchain(o: Options, what: string): RustToolchain {
  optionalString(o.path, `${what}: path`);
  optionalStrings(o.components, `${what}: components`);
  checkPresetBase(o, what);
  const path = (o.path as string | undefined) ?? ".";
  const version = (o.version as string | undefined) ?? "stable";
  const components = (o.components as readonly string[] | undefined) ?? ["clippy", "rustfmt"];
  if (!VERSION.test(version)) {
    throw new Error(`rust.toolchain: invalid version "${version}"\n  → use "stable", "nightly", or a semver like "1.81.0"`);
  }
  const componentFlag = components.length > 0 ? ` --component ${components.join(",")}` : "";
  const installCmd = [
    `curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --default-toolchain ${version} --profile minimal${componentFlag}`,
    ". $HOME/.cargo/env && rustc --version && cargo --version",
  ].join(" && ");
  const installed = makeInstallChain({
    aptPackages: APT_PACKAGES,
    installCmd,
    installCache: forever(),
    langTag: "rust",
    installTag: "rustup",
    image: o.image as string | undefined,
    base: o.base as Step | undefined,
  });
  return new RustToolchain(path, installed);
}

function toolchain(opts?: RustToolchainOptions): RustToolchain {
  return makeToolchain(options(opts, TOOLCHAIN_OPTIONS, "rust.toolchain"), "rust.toolchain");
}

function project(opts?: RustProjectOptions): RustProject {
  const o = options(opts, PROJECT_OPTIONS, "rust.project");
  const tc = makeToolchain(o, "rust.project");
  const path = (o.path as string | undefined) ?? ".";
  const under = (file: string): string => (path !== "." ? `${path}/${file}` : file);
  const cache = (o.cache as CachePolicy | undefined) ?? onChange(under("Cargo.lock"), under("**/Cargo.toml"), under("**/*.rs"));
  const warm = tc._cargo("cargo build --workspace --tests --locked", ":rust: warmup", { cache });
  return new RustProject(tc, warm);
}

export const rust = { toolchain, project };
