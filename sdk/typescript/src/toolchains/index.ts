/**
 * `@harmont/hm/toolchains`: presets that expand into ordinary steps for
 * common stacks. Each builds a chain: an apt base (cached for a day), an
 * install step (cached forever), a dependency step (cached on the lock
 * files), then actions that fork off it.
 */

export { APT_BASE_TTL, Project, SYSTEM_PATH, Toolchain, aptBase } from "./base.ts";
export type { ActionOptions, AptBaseOptions, PresetOptions, SetupOptions } from "./base.ts";
export { Cmake, CmakeProject, CmakeToolchain, cmake } from "./cmake.ts";
export type { CmakeOptions } from "./cmake.ts";
export { Elixir, ElixirProject, ElixirToolchain, elixir } from "./elixir.ts";
export type { ElixirProjectOptions } from "./elixir.ts";
export { Go, GoProject, GoToolchain, go } from "./go.ts";
export type { GoProjectOptions } from "./go.ts";
export { Js, JsProject, JsToolchain, js, ts } from "./js.ts";
export type { JsProjectOptions, JsToolchainOptions, PackageManager, Runtime } from "./js.ts";
export { PipToolchain, Python, PythonProject, Uv, UvProject, UvToolchain, python } from "./python.ts";
export type { PipToolchainOptions, UvProjectOptions } from "./python.ts";
export { Rust, RustProject, RustToolchain, rust } from "./rust.ts";
export type { RustProjectOptions } from "./rust.ts";
export { Zig, ZigProject, ZigToolchain, zig } from "./zig.ts";
export type { ZigProjectOptions } from "./zig.ts";
export { python as py } from "./python.ts";
