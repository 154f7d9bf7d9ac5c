/**
 * Cargo's command-line flags from options, the same tokens in the same
 * order as Harmont's Python SDK writes them. Values given as options are
 * shell-quoted; `flags` are passed as they are.
 */

export interface CargoOpts {
  readonly workspace?: boolean;
  readonly packages?: readonly string[];
  readonly exclude?: readonly string[];
  readonly allFeatures?: boolean;
  readonly noDefaultFeatures?: boolean;
  readonly features?: readonly string[];
  readonly target?: string;
  readonly allTargets?: boolean;
  readonly release?: boolean;
  readonly profile?: string;
  readonly locked?: boolean;
  readonly flags?: readonly string[];
}

/** The names of `CargoOpts`. */
export const CARGO_OPTIONS = [
  "workspace",
  "packages",
  "exclude",
  "allFeatures",
  "noDefaultFeatures",
  "features",
  "target",
  "allTargets",
  "release",
  "profile",
  "locked",
  "flags",
] as const;

const PLAIN = /^[A-Za-z0-9_@%+=:,./-]+$/;

/** `s` as one shell word, as Python's `shlex.quote` writes it. */
export function shQuote(s: string): string {
  if (s === "") return "''";
  return PLAIN.test(s) ? s : `'${s.split("'").join(`'"'"'`)}'`;
}

function conflicts(o: CargoOpts): void {
  if (o.allFeatures && ((o.features?.length ?? 0) > 0 || o.noDefaultFeatures)) {
    throw new Error(
      "rust: --all-features conflicts with features/noDefaultFeatures\n" +
        `  observed: allFeatures=true, features=${JSON.stringify(o.features ?? [])}, ` +
        `noDefaultFeatures=${o.noDefaultFeatures ?? false}\n` +
        "  → pass allFeatures alone, or list explicit features without allFeatures",
    );
  }
  if (o.release && o.profile !== undefined) {
    throw new Error(
      "rust: release conflicts with profile\n" +
        `  observed: release=true, profile=${JSON.stringify(o.profile)}\n` +
        '  → use profile: "release" (identical effect) or drop one',
    );
  }
  if (!o.exclude?.length) return;
  if (o.packages?.length) {
    throw new Error(
      "rust: exclude cannot combine with packages\n" +
        `  observed: packages=${JSON.stringify(o.packages)}, exclude=${JSON.stringify(o.exclude)}\n` +
        "  → --exclude pairs with --workspace; packages already selects explicitly, so drop one",
    );
  }
  if (!o.workspace) {
    throw new Error(
      "rust: exclude requires workspace\n" +
        `  observed: exclude=${JSON.stringify(o.exclude)} without workspace=true\n` +
        "  → cargo --exclude only applies to --workspace; pass workspace: true",
    );
  }
}

/** The flags `o` asks for, with a leading space, or `""` for none. */
export function cargoFlags(o: CargoOpts): string {
  conflicts(o);
  const words: string[] = [];
  if (o.packages?.length) {
    for (const name of o.packages) words.push(`-p ${shQuote(name)}`);
  } else if (o.workspace) {
    words.push("--workspace");
    for (const name of o.exclude ?? []) words.push(`--exclude ${shQuote(name)}`);
  }
  if (o.allTargets) words.push("--all-targets");
  if (o.allFeatures) {
    words.push("--all-features");
  } else {
    if (o.noDefaultFeatures) words.push("--no-default-features");
    if (o.features?.length) words.push(`--features ${shQuote(o.features.join(","))}`);
  }
  if (o.target !== undefined) words.push(`--target ${shQuote(o.target)}`);
  if (o.profile !== undefined) words.push(`--profile ${shQuote(o.profile)}`);
  else if (o.release) words.push("--release");
  if (o.locked ?? true) words.push("--locked");
  if (o.flags?.length) words.push(...o.flags);
  return words.length > 0 ? ` ${words.join(" ")}` : "";
}
