/**
 * `@harmont/hm`: pipelines as code for hm.
 *
 * A file in `.hm/` exports its pipelines as `default` or `pipelines` (one
 * definition or an array): `{slug, name?, allowManual?, triggers?, pipeline}`.
 * hm's embedded engine evaluates the files and renders every pipeline to
 * hm's IR with `__render`, exactly as the Python SDK renders the same
 * pipelines.
 */

import { resetTargets } from "./target.ts";
import { prepareFiles, renderFiles } from "./render.ts";
import type { ModuleFile, Prepared } from "./render.ts";
import { resetAptBases } from "./toolchains/base.ts";

export { CachePolicy, compose, forever, onChange, ttl } from "./cache.ts";
export type { CachePolicyIr, EnvKeysOptions } from "./cache.ts";
export type { Duration } from "./duration.ts";
export { HarmontError } from "./errors.ts";
export { PipelineBody, Trigger, Wait, pipeline, pr, pullRequest, push, wait } from "./pipeline.ts";
export type {
  Globs,
  HasActions,
  PipelineDefinition,
  PipelineOptions,
  PipelineSource,
  PullRequestOptions,
  PushOptions,
  Steps,
  TriggerIr,
  WaitOptions,
} from "./pipeline.ts";
export type { EnvelopeEntry, IrDefinition, IrStep, ModuleFile, Prepared } from "./render.ts";
export { DEFAULT_IMAGE, Fork, Step, scratch, sh, timeout } from "./step.ts";
export type { Env, ScratchOptions, ShOptions, StepRecord } from "./step.ts";
export { target } from "./target.ts";
export type { Target } from "./target.ts";
export { Project, Toolchain, aptBase, cmake, elixir, go, js, py, python, rust, ts, zig } from "./toolchains/index.ts";

/** The SDK's version. */
export const VERSION = "0.1.0";

/**
 * The envelope of every pipeline `files` export, with the file of each, as
 * JSON (`{"envelope": {"schema_version": "1", "pipelines": [...]}, "sources": [...]}`),
 * rendered by hm's engine. A definition that is malformed, or whose slug
 * another one has, throws a `HarmontError` whose message starts with the
 * file's name in backticks; errors thrown in a pipeline or target function
 * propagate as they are, carrying the file in a non-enumerable `hmFile`
 * property.
 */
export function __render(files: ModuleFile[]): string {
  return renderFiles(files);
}

/** What hm's engine calls after evaluating the pipeline files: `__render` up to the IR, which the engine makes. */
export function __prepare(files: ModuleFile[]): Prepared[] {
  return prepareFiles(files);
}

/** Forgets every target, target value and shared apt base: an evaluation starts from nothing. */
export function __reset(): void {
  resetTargets();
  resetAptBases();
}
