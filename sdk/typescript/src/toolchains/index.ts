/** `@harmont/hm/toolchains`: presets that expand into ordinary steps. */

export { js, ts, JsProject, type JsOptions } from "./js.ts";
export { go, GoToolchain, type GoOptions } from "./go.ts";
export {
  rust,
  RustToolchain,
  RustProject,
  type RustToolchainOptions,
  type RustProjectOptions,
  type FeaturePowersetOptions,
} from "./rust.ts";
export { python, PythonToolchain, type PythonOptions } from "./python.ts";
export {
  cmake,
  CMakeToolchain,
  CMakeProject,
  type CMakeToolchainOptions,
  type CMakeProjectOptions,
  type CMakeOptions,
} from "./cmake.ts";
export { zig, ZigToolchain, ZigProject, type ZigOptions } from "./zig.ts";
export * as py from "./py/index.ts";
export { elixir, ElixirProject, type ElixirOptions } from "./elixir.ts";
