/**
 * What the toolchain presets share: the commands that install runtimes,
 * the apt base step, and the chain every preset starts with (apt base,
 * then the toolchain's install step).
 */

import { ttl } from "../cache.ts";
import type { CachePolicy } from "../cache.ts";
import { allowed, options, optionalString, optionalStrings, show } from "../options.ts";
import { checkStepOptions, scratch, Step } from "../step.ts";

/** How long an apt base stays cached: a day. */
const APT_SECONDS = 86400;

export function aptInstallCmd(packages: readonly string[]): string {
  return `apt-get update && apt-get install -y ${packages.join(" ")}`;
}

/** Node.js from NodeSource; `version` is a major version, with or without `.x`. */
export function nodeInstallCmd(version: string): string {
  const major = version.endsWith(".x") ? version.slice(0, -2) : version;
  return `curl -fsSL https://deb.nodesource.com/setup_${major}.x | bash - && apt-get install -y nodejs`;
}

export function bunInstallCmd(version?: string): string {
  const pin = version != null ? ` -s "bun-v${version}"` : "";
  return `curl -fsSL https://bun.sh/install | BUN_INSTALL=/usr/local bash${pin}`;
}

export function denoInstallCmd(version?: string): string {
  const pin = version != null ? ` -s "v${version}"` : "";
  return `curl -fsSL https://deno.land/install.sh | sh${pin} && ln -sf $HOME/.deno/bin/deno /usr/local/bin/deno`;
}

const APT_BASE_OPTIONS = allowed("packages", "image", "label");

/** A root step installing `packages` with apt, cached for a day; presets take it as their `base`. */
export function aptBase(opts: { packages: readonly string[]; image?: string; label?: string }): Step {
  const o = options(opts, APT_BASE_OPTIONS, "aptBase");
  if (o.packages === undefined || o.packages === null) {
    throw new TypeError('aptBase: packages is required\n  → e.g. aptBase({ packages: ["curl", "git"] })');
  }
  optionalStrings(o.packages, "aptBase: packages");
  optionalString(o.image, "aptBase: image");
  optionalString(o.label, "aptBase: label");
  return scratch({ image: o.image as string | undefined }).sh(aptInstallCmd(o.packages as string[]), {
    label: (o.label as string | undefined) ?? ":apt: base",
    cache: ttl(APT_SECONDS),
  });
}

/**
 * A toolchain's install step: `installCmd` on `base`, or on a new apt base
 * step (labelled `:<langTag>: apt-base`) installing `aptPackages` on
 * `image`.
 */
export function makeInstallChain(opts: {
  aptPackages: readonly string[];
  installCmd: string;
  installCache: CachePolicy;
  langTag: string;
  installTag: string;
  image?: string;
  base?: Step;
}): Step {
  const parent =
    opts.base ??
    scratch({ image: opts.image }).sh(aptInstallCmd(opts.aptPackages), {
      label: `:${opts.langTag}: apt-base`,
      cache: ttl(APT_SECONDS),
    });
  return parent.sh(opts.installCmd, { label: `:${opts.langTag}: ${opts.installTag}`, cache: opts.installCache });
}

/** Checks the options every preset takes: `image` a string and `base` a step. */
export function checkPresetBase(o: Readonly<Record<string, unknown>>, what: string): void {
  optionalString(o.image, `${what}: image`);
  if (o.base !== undefined && o.base !== null && !(o.base instanceof Step)) {
    throw new TypeError(`${what}: base must be a step, not ${show(o.base)}`);
  }
}

const STEP_OPTIONS = ["label", "cache", "env", "image", "runner", "runnerArgs", "key", "cwd", "volumes"];

/**
 * The options of a preset's action, checked by name: a step's options
 * (`label`, `cache`, `env`, ...) and the action's own `extra` ones. The
 * returned function checks an options object for the action `what`.
 */
export function actionOptions(...extra: string[]): (opts: unknown, what: string) => Readonly<Record<string, unknown>> {
  const names = allowed(...STEP_OPTIONS, ...extra);
  return (opts, what) => {
    const o = options(opts, names, what);
    checkStepOptions(o, what);
    return o;
  };
}
