/**
 * The envelope of a project's pipelines (`schema_version "1"`), as JSON:
 * what `hm pipelines` prints and Harmont's tools read.
 */

import { host } from "./host.ts";
import { resolvePipelineCacheKeys } from "./keygen.ts";
import type { PipelineIR } from "./pipeline.ts";
import type { Trigger } from "./triggers.ts";

/** A pipeline as a file exports it. */
export interface PipelineDefinition {
  readonly slug: string;
  readonly name?: string;
  readonly allowManual?: boolean;
  readonly triggers?: readonly Trigger[];
  readonly pipeline: PipelineIR;
}

export interface RenderOptions {
  /** The project root: `on_change` paths are read from it. Needed when a step is cached. */
  readonly basePath?: string;
  /** Part of every cache key (default: `HM_PIPELINE_ORG`, else `default`). */
  readonly pipelineOrg?: string;
  /** Seconds since the epoch, for `ttl` windows (default: now). */
  readonly now?: number;
  /** Where `envKeys` are read (default: the environment). */
  readonly env?: Readonly<Record<string, string>>;
}

interface EnvelopeEntry {
  slug: string;
  name: string;
  allow_manual: boolean;
  triggers: Record<string, unknown>[];
  definition: PipelineIR;
}

/** Whether any step of `ir` is cached. */
function cached(ir: PipelineIR): boolean {
  return ir.graph.nodes.some((node) => {
    const cache = node.step.cache as { policy: string } | undefined;
    return cache != null && cache.policy !== "none";
  });
}

/**
 * The envelope of `definitions` as JSON. With `basePath`, every cached
 * step's policy gets Harmont's cache key (`cache.key`), written into the
 * definitions' IR; without it, a cached step is an error.
 */
export function renderEnvelope(definitions: readonly PipelineDefinition[], opts?: RenderOptions): string {
  const environment = opts?.env ?? host().env();
  const pipelineOrg = opts?.pipelineOrg ?? host().env().HM_PIPELINE_ORG ?? "default";
  const now = opts?.now ?? Math.floor(Date.now() / 1000);
  const basePath = opts?.basePath;
  const pipelines = definitions.map((def): EnvelopeEntry => {
    const entry: EnvelopeEntry = {
      slug: def.slug,
      name: def.name ?? def.slug,
      allow_manual: def.allowManual ?? true,
      triggers: (def.triggers ?? []).map((trigger) => trigger.toJSON()),
      definition: def.pipeline,
    };
    if (basePath == null) {
      if (cached(entry.definition)) {
        throw new Error(
          `Pipeline "${def.slug}" contains cached steps but no basePath was provided. ` +
            "Pass { basePath: process.cwd() } as the second argument to renderEnvelope().",
        );
      }
    } else {
      resolvePipelineCacheKeys(entry.definition.graph, {
        pipelineOrg,
        pipelineSlug: def.slug,
        now,
        basePath,
        env: environment,
      });
    }
    return entry;
  });
  return JSON.stringify({ schema_version: "1", pipelines });
}
