/**
 * CMake: `cmake()` is a toolchain (cmake, a generator, ccache, clang
 * tools and an optional compiler on an apt base); `project()` on it, or
 * `cmake({ path })` directly, configures and builds a project once (cached)
 * and forks test, install, lint and package from that build.
 */

import { checkPolicy, forever, onChange } from "../cache.ts";
import type { CachePolicy } from "../cache.ts";
import { allowed, options, optionalBoolean, optionalString, show } from "../options.ts";
import type { Step, StepOptions } from "../step.ts";
import { actionOptions, checkPresetBase, makeInstallChain } from "./shared.ts";

const COMPILER = /^(gcc|clang)(-\d+)?$/;
const TOOLCHAIN_OPTIONS = ["compiler", "generator", "ccache", "image", "base"];
const PROJECT_OPTIONS = ["path", "preset", "defines", "deps", "target", "cache"];
const CMAKE_OPTIONS = allowed(...TOOLCHAIN_OPTIONS, ...PROJECT_OPTIONS);
const PROJECT_ONLY = allowed(...PROJECT_OPTIONS);
const TEST = actionOptions("parallel");
const INSTALL = actionOptions("prefix");
const FMT = actionOptions("fix");
const LINT = actionOptions();
const PACKAGE = actionOptions("generator");

type ActionOptions = Omit<StepOptions, "cwd">;

export interface CMakeToolchainOptions {
  readonly compiler?: string;
  readonly generator?: "ninja" | "make";
  readonly ccache?: boolean;
  readonly image?: string;
  readonly base?: Step;
}

export interface CMakeProjectOptions {
  readonly path?: string;
  readonly preset?: string;
  readonly defines?: Record<string, string>;
  readonly deps?: "vcpkg" | null;
  readonly target?: string;
  readonly cache?: CachePolicy;
}

export type CMakeOptions = CMakeToolchainOptions & CMakeProjectOptions;

/** A compiler name's family (`gcc` or `clang`) and version suffix (`-14`, or empty). */
function compilerParts(compiler: string): [family: string, suffix: string] | null {
  const m = COMPILER.exec(compiler);
  return m === null ? null : [m[1] as string, m[2] ?? ""];
}

function invalidCompiler(compiler: unknown): Error {
  return new Error(`hm.cmake: invalid compiler "${String(compiler)}"\n  → use "gcc", "gcc-14", "clang", or "clang-18"`);
}

function aptPackages(compiler: string | undefined, ccache: boolean, generator: string): string[] {
  const packages = ["cmake", "build-essential", "pkg-config"];
  if (generator === "ninja") packages.push("ninja-build");
  if (ccache) packages.push("ccache");
  packages.push("clang-format", "clang-tidy");
  if (compiler != null) {
    const parts = compilerParts(compiler);
    if (parts === null) throw invalidCompiler(compiler);
    const [family, suffix] = parts;
    if (family === "gcc") packages.push(`gcc${suffix}`, `g++${suffix}`);
    else packages.push(`clang${suffix}`, `lld${suffix}`);
  }
  return packages;
}

function verifyCmd(compiler: string | undefined, ccache: boolean, generator: string): string {
  const checks = ["cmake --version"];
  if (generator === "ninja") checks.push("ninja --version");
  if (ccache) checks.push("ccache --version");
  const parts = compiler != null ? compilerParts(compiler) : null;
  if (parts !== null) checks.push(`${parts[0]}${parts[1]} --version`);
  return checks.join(" && ");
}

interface Configure {
  path: string;
  preset: string | undefined;
  defines: Record<string, string> | undefined;
  compiler: string | undefined;
  ccache: boolean;
  generator: string;
}

function configureCmd(c: Configure): string {
  if (c.preset != null) return `cd ${c.path} && cmake --preset ${c.preset}`;
  const words = [
    `cd ${c.path} && cmake -S . -B build`,
    `-G ${c.generator === "ninja" ? "Ninja" : "Unix Makefiles"}`,
    "-DCMAKE_EXPORT_COMPILE_COMMANDS=ON",
  ];
  if (c.ccache) words.push("-DCMAKE_C_COMPILER_LAUNCHER=ccache", "-DCMAKE_CXX_COMPILER_LAUNCHER=ccache");
  const parts = c.compiler != null ? compilerParts(c.compiler) : null;
  if (parts !== null) {
    const [family, suffix] = parts;
    if (family === "gcc") words.push(`-DCMAKE_C_COMPILER=gcc${suffix}`, `-DCMAKE_CXX_COMPILER=g++${suffix}`);
    else words.push(`-DCMAKE_C_COMPILER=clang${suffix}`, `-DCMAKE_CXX_COMPILER=clang++${suffix}`);
  }
  for (const [name, value] of Object.entries(c.defines ?? {})) words.push(`-D${name}=${value}`);
  return words.join(" ");
}

/** `cmake --build` of the build directory (`build` under `path`, or as given when `relative`). */
function buildCmd(path: string, target: string | undefined, relative = false): string {
  const dir = relative ? "build" : `${path}/build`;
  return `cmake --build ${dir} --parallel $(nproc)${target != null ? ` --target ${target}` : ""}`;
}

function checkProject(o: Readonly<Record<string, unknown>>): void {
  optionalString(o.path, "cmake: path");
  optionalString(o.preset, "cmake: preset");
  optionalString(o.target, "cmake: target");
  const defines = o.defines;
  if (defines != null) {
    if (typeof defines !== "object" || Array.isArray(defines)) {
      throw new TypeError(`cmake: defines must be an object of names to values, not ${show(defines)}`);
    }
    for (const [name, value] of Object.entries(defines)) {
      if (!["string", "number", "boolean"].includes(typeof value)) {
        throw new TypeError(`cmake: defines: the value of ${name} must be a string, not ${show(value)}`);
      }
    }
  }
  if (o.deps != null && o.deps !== "vcpkg") throw new TypeError(`cmake: deps must be "vcpkg" or null, not ${show(o.deps)}`);
  if (o.cache != null) checkPolicy(o.cache, "cmake");
}

export class CMakeToolchain {
  private readonly _installed: Step;
  readonly compiler: string | undefined;
  readonly ccache: boolean;
  readonly generator: string;

  constructor(installed: Step, compiler: string | undefined, ccache: boolean, generator: string) {
    this._installed = installed;
    this.compiler = compiler;
    this.ccache = ccache;
    this.generator = generator;
  }

  /** The step that installed and checked the tools. */
  install(): Step {
    return this._installed;
  }

  /** A toolchain whose projects build on `cmd`, run after the install (before configuring). */
  setup(cmd: string, opts?: StepOptions): CMakeToolchain {
    return new CMakeToolchain(this._installed.sh(cmd, opts), this.compiler, this.ccache, this.generator);
  }

  /**
   * The project at `path`, configured and built once (cached on its
   * CMakeLists.txt, or on vcpkg.json with `deps: "vcpkg"`, or `cache`).
   */
  project(opts?: CMakeProjectOptions): CMakeProject {
    const o = options(opts, PROJECT_ONLY, "cmake.project");
    checkProject(o);
    const path = (o.path as string | undefined) ?? ".";
    const deps = o.deps as string | undefined | null;
    const target = o.target as string | undefined;
    const configure = configureCmd({
      path,
      preset: o.preset as string | undefined,
      defines: o.defines as Record<string, string> | undefined,
      compiler: this.compiler,
      ccache: this.ccache,
      generator: this.generator,
    });
    let cache = o.cache as CachePolicy | undefined | null;
    if (cache == null) {
      cache = deps === "vcpkg" ? onChange("vcpkg.json") : onChange(path !== "." ? `${path}/CMakeLists.txt` : "CMakeLists.txt");
    }
    let parent = this._installed;
    if (deps === "vcpkg") {
      const vcpkg = [
        "git clone https://github.com/microsoft/vcpkg.git /opt/vcpkg",
        "/opt/vcpkg/bootstrap-vcpkg.sh",
        `cd ${path} && /opt/vcpkg/vcpkg install`,
      ].join(" && ");
      parent = parent.sh(vcpkg, { label: ":cmake: vcpkg", cache: onChange("vcpkg.json") });
    }
    const built = parent.sh(`${configure} && ${buildCmd(path, target, true)}`, { label: ":cmake: build", cache });
    return new CMakeProject(this, built, path);
  }
}

export class CMakeProject {
  readonly toolchain: CMakeToolchain;
  private readonly _built: Step;
  readonly path: string;

  constructor(toolchain: CMakeToolchain, built: Step, path: string) {
    this.toolchain = toolchain;
    this._built = built;
    this.path = path;
  }

  /** The cached configure-and-build step. */
  build(): Step {
    return this._built;
  }

  test(opts?: ActionOptions & { parallel?: boolean }): Step {
    const { parallel, ...rest } = TEST(opts, "cmake.test");
    optionalBoolean(parallel, "cmake.test: parallel");
    const cmd = [
      buildCmd(this.path, undefined),
      `ctest --test-dir ${this.path}/build --output-on-failure${(parallel ?? true) ? " --parallel $(nproc)" : ""}`,
    ].join(" && ");
    return this._built.sh(cmd, { label: ":cmake: test", ...rest });
  }

  install(opts?: ActionOptions & { prefix?: string }): Step {
    const { prefix, ...rest } = INSTALL(opts, "cmake.install");
    optionalString(prefix, "cmake.install: prefix");
    return this._built.sh(`cmake --install ${this.path}/build${prefix ? ` --prefix ${String(prefix)}` : ""}`, {
      label: ":cmake: install",
      ...rest,
    });
  }

  /** clang-format over the C and C++ sources (outside `build/`): a check, or with `fix` in place. It needs no build. */
  fmt(opts?: ActionOptions & { fix?: boolean }): Step {
    const { fix, ...rest } = FMT(opts, "cmake.fmt");
    const cmd = [
      `cd ${this.path} && find . -not -path './build/*'`,
      "\\( -name '*.c' -o -name '*.h'",
      "-o -name '*.cpp' -o -name '*.hpp' -o -name '*.cc' -o -name '*.cxx' \\) |",
      `xargs clang-format ${fix ? "-i" : "--dry-run --Werror"}`,
    ].join(" ");
    return this.toolchain.install().sh(cmd, { label: ":cmake: fmt", ...rest });
  }

  lint(opts?: ActionOptions): Step {
    return this._built.sh(`cd ${this.path} && run-clang-tidy -p build`, {
      label: ":cmake: lint",
      ...LINT(opts, "cmake.lint"),
    });
  }

  package(opts?: ActionOptions & { generator?: string }): Step {
    const { generator, ...rest } = PACKAGE(opts, "cmake.package");
    optionalString(generator, "cmake.package: generator");
    return this._built.sh(`cd ${this.path}/build && cpack${generator ? ` -G ${String(generator)}` : ""}`, {
      label: ":cmake: package",
      ...rest,
    });
  }
}

export function cmake(opts: CMakeOptions & { path: string }): CMakeProject;
export function cmake(opts?: CMakeToolchainOptions): CMakeToolchain;
/** A CMake toolchain (ninja and ccache by default), or with `path` a project built with it. */
export function cmake(opts?: CMakeOptions): CMakeToolchain | CMakeProject {
  const o = options(opts, CMAKE_OPTIONS, "cmake");
  checkPresetBase(o, "cmake");
  optionalBoolean(o.ccache, "cmake: ccache");
  const compiler = o.compiler as string | undefined;
  const generator = (o.generator as string | undefined) ?? "ninja";
  const ccache = (o.ccache as boolean | undefined) ?? true;
  if (generator !== "ninja" && generator !== "make") {
    throw new Error(`hm.cmake: invalid generator "${generator}"\n  → use "ninja" or "make"`);
  }
  if (compiler != null && !COMPILER.test(compiler)) throw invalidCompiler(compiler);
  const installed = makeInstallChain({
    aptPackages: aptPackages(compiler, ccache, generator),
    installCmd: verifyCmd(compiler, ccache, generator),
    installCache: forever(),
    langTag: "cmake",
    installTag: "verify",
    image: o.image as string | undefined,
    base: o.base as Step | undefined,
  });
  const toolchain = new CMakeToolchain(installed, compiler, ccache, generator);
  if (o.path == null) return toolchain;
  return toolchain.project({
    path: o.path as string,
    preset: o.preset as string | undefined,
    defines: o.defines as Record<string, string> | undefined,
    deps: o.deps as "vcpkg" | null | undefined,
    target: o.target as string | undefined,
    cache: o.cache as CachePolicy | undefined,
  });
}
