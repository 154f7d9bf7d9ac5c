/**
 * The few things the SDK needs from the machine it runs on: SHA-256,
 * reading files and directories, the environment and the working
 * directory (cache keys, step keys and `js.project`'s detection use them).
 *
 * Inside hm they are functions of hm's engine (`globalThis.__hm_host`,
 * with relative paths taken from the project root). Under Node.js 20.16 or
 * newer they come from Node's own modules through
 * `process.getBuiltinModule`, so that no SDK module imports `node:`
 * modules, which hm's engine does not have.
 */

/** What a path names: a file, a directory, or something else. */
export type EntryKind = "file" | "dir" | "other";

/** The host's functions. */
export interface Host {
  /** The hex SHA-256 of `parts` one after the other (strings as UTF-8). */
  sha256(parts: ReadonlyArray<string | Uint8Array>): string;
  /** A file's bytes; throws when it cannot be read. */
  readBytes(path: string): Uint8Array;
  /** A file's text (UTF-8); throws when it cannot be read. */
  readText(path: string): string;
  /** What `path` names, following symbolic links; `null` when nothing (or nothing readable) is there. */
  kind(path: string): EntryKind | null;
  /** A directory's entries sorted by name, each with its own kind (a symbolic link is `other`); throws when it cannot be read. */
  list(path: string): Array<[string, EntryKind]>;
  /** The environment variables. */
  env(): Readonly<Record<string, string>>;
  /** The directory relative paths start from. */
  cwd(): string;
}

/** The parts of Node.js this module uses. */
interface NodeProcess {
  getBuiltinModule?: (name: string) => unknown;
  env: Record<string, string>;
  cwd(): string;
}
interface NodeFs {
  readFileSync(path: string): Uint8Array;
  readFileSync(path: string, encoding: "utf8"): string;
  statSync(path: string): { isFile(): boolean; isDirectory(): boolean };
  readdirSync(
    path: string,
    options: { withFileTypes: true },
  ): Array<{ name: string; isFile(): boolean; isDirectory(): boolean }>;
}
interface NodeHash {
  update(data: string | Uint8Array): NodeHash;
  digest(encoding: "hex"): string;
}
interface NodeCrypto {
  createHash(algorithm: "sha256"): NodeHash;
}

function kindOf(entry: { isFile(): boolean; isDirectory(): boolean }): EntryKind {
  if (entry.isFile()) return "file";
  return entry.isDirectory() ? "dir" : "other";
}

function nodeHost(): Host | null {
  const proc = (globalThis as { process?: NodeProcess }).process;
  if (proc === undefined || typeof proc.getBuiltinModule !== "function") return null;
  const fs = proc.getBuiltinModule("node:fs") as NodeFs;
  const crypto = proc.getBuiltinModule("node:crypto") as NodeCrypto;
  return {
    sha256(parts) {
      const hash = crypto.createHash("sha256");
      for (const part of parts) hash.update(part);
      return hash.digest("hex");
    },
    readBytes: (path) => fs.readFileSync(path),
    readText: (path) => fs.readFileSync(path, "utf8"),
    kind(path) {
      try {
        return kindOf(fs.statSync(path));
      } catch {
        return null;
      }
    },
    list: (path) => fs.readdirSync(path, { withFileTypes: true }).map((e): [string, EntryKind] => [e.name, kindOf(e)]),
    env: () => proc.env,
    cwd: () => proc.cwd(),
  };
}

function missingHost(): never {
  throw new Error(
    "@harmont/hm: this JavaScript engine offers no file system or hashing\n" +
      "  → run pipelines with hm, or with Node.js 20.16 or newer",
  );
}

let current: Host | undefined;

/** The host's functions: hm's engine's, else Node's. */
export function host(): Host {
  if (current === undefined) {
    const engine = (globalThis as { __hm_host?: Host }).__hm_host;
    current = engine ?? nodeHost() ?? {
      sha256: missingHost,
      readBytes: missingHost,
      readText: missingHost,
      kind: missingHost,
      list: missingHost,
      env: () => ({}),
      cwd: () => "/",
    };
  }
  return current;
}

/** The hex SHA-256 of `parts`, one after the other. */
export function sha256Hex(...parts: Array<string | Uint8Array>): string {
  return host().sha256(parts);
}

// POSIX paths, as Node's `path.posix` treats them.

/** `path` with `.` and `..` resolved and repeated slashes merged; a trailing slash stays. */
export function normalize(path: string): string {
  if (path === "") return ".";
  const absolute = path.startsWith("/");
  const out: string[] = [];
  for (const part of path.split("/")) {
    if (part === "" || part === ".") continue;
    if (part === "..") {
      if (out.length > 0 && out[out.length - 1] !== "..") out.pop();
      else if (!absolute) out.push("..");
    } else {
      out.push(part);
    }
  }
  let joined = (absolute ? "/" : "") + out.join("/");
  if (joined === "") joined = absolute ? "/" : ".";
  if (path.endsWith("/") && !joined.endsWith("/")) joined += "/";
  return joined;
}

/** The non-empty `parts` joined with `/`, normalized. */
export function join(...parts: string[]): string {
  const kept = parts.filter((p) => p !== "");
  return kept.length === 0 ? "." : normalize(kept.join("/"));
}

/** `paths` resolved right to left into an absolute path, from the working directory. */
export function resolve(...paths: string[]): string {
  let out = "";
  for (let i = paths.length - 1; i >= 0 && !out.startsWith("/"); i--) {
    const part = paths[i] as string;
    if (part !== "") out = out === "" ? part : `${part}/${out}`;
  }
  if (!out.startsWith("/")) out = `${host().cwd()}/${out}`;
  const normal = normalize(out);
  return normal.length > 1 && normal.endsWith("/") ? normal.slice(0, -1) : normal;
}

/** `to` relative to `from`, for a `to` inside `from` (both normalized). */
export function relative(from: string, to: string): string {
  if (to === from) return "";
  if (from === "/") return to.slice(1);
  return to.startsWith(`${from}/`) ? to.slice(from.length + 1) : to;
}
