/**
 * `@harmont/hm`: pipelines as code. A file in a project's `.hm/` folder
 * exports its pipelines as `default` (else as `pipelines`): one definition
 * `{ slug, name?, allowManual?, triggers?, pipeline }` or an array of
 * them, where `pipeline` is what `pipeline([...steps])` returns.
 * Presets live in `@harmont/hm/toolchains`.
 */

export { Step, scratch, sh, timeout, wait, type StepOptions } from "./step.ts";
export {
  type CachePolicy,
  type CacheForever,
  type CacheTTL,
  type CacheOnChange,
  type CacheCompose,
  forever,
  ttl,
  onChange,
  compose,
} from "./cache.ts";
export { type Trigger, PushTrigger, PullRequestTrigger, push, pullRequest } from "./triggers.ts";
export { pipeline, type PipelineIR, type PipelineOptions } from "./pipeline.ts";
export { Volume, volume, type Sharing, type VolumeIR, type Volumes } from "./volume.ts";
export { target, clearTargetCache } from "./target.ts";
export { aptBase } from "./toolchains/shared.ts";
export { renderEnvelope, type PipelineDefinition, type RenderOptions } from "./envelope.ts";
export { resolvePipelineCacheKeys, type CacheKeyOptions } from "./keygen.ts";
