/**
 * @internal What hm's engine calls after importing a project's pipeline
 * files; not part of `@harmont/hm`.
 *
 * `prepare` reads each file's definitions as Harmont's runner does (the
 * `default` export, else `pipelines`; one definition or an array), checks
 * them, and hands each pipeline over with what its graph is made from:
 * the `Lowering` of a `pipeline()` whose graph nobody read (the engine
 * makes that graph in Rust), else the IR object itself.
 */

import { show } from "./options.ts";
import { LOWERING, lowerGraph } from "./pipeline.ts";
import type { Lowering, PipelineIR } from "./pipeline.ts";
import { Step } from "./step.ts";

/** One pipeline file's module, as the engine hands it over. */
export interface ModuleFile {
  /** The file, relative to the project root. */
  file: string;
  exports: Record<string, unknown>;
}

/** A definition, checked. */
export interface Prepared {
  /** The file that exported it, and the export (`default` or `pipelines`). */
  file: string;
  exported: string;
  slug: string;
  name: string;
  allowManual: boolean;
  /** The triggers' JSON. */
  triggers: string;
  /** The IR object: its `version`, `timeout_seconds`, `network` and `volumes`, and its `graph` when `lowering` is null. */
  ir: object;
  /** What the graph is made from, when nobody read it. */
  lowering: Lowering | null;
  /** The stack where `pipeline()` made the IR, if it did. */
  where: string | null;
}

const FIELDS = ["slug", "name", "allowManual", "triggers", "pipeline"];

/** An error in a file's exported definitions; the engine shows it at the export. */
class DefinitionError extends TypeError {
  readonly hmFile: string;
  readonly hmExport: string;

  constructor(message: string, file: string, exported: string) {
    super(message);
    this.name = "TypeError";
    this.hmFile = file;
    this.hmExport = exported;
  }
}

function definition(value: unknown, file: string, exported: string): Prepared {
  const fail = (message: string): never => {
    throw new DefinitionError(message, file, exported);
  };
  if (typeof value !== "object" || value === null || Array.isArray(value) || value instanceof Step) {
    return fail(`export \`${exported}\`: a pipeline definition is an object { slug, pipeline, name?, allowManual?, triggers? }, not ${show(value)}`);
  }
  const d = value as Record<string, unknown>;
  const slug = d.slug;
  if (typeof slug !== "string") return fail(`a pipeline definition's slug must be a string, not ${show(slug)}`);
  for (const field of Object.keys(d)) {
    // Harmont's runner ignores fields it does not know; so does hm, aloud.
    if (!FIELDS.includes(field)) {
      console.warn(
        `warning: ${file}: pipeline "${slug}" has a field \`${field}\` that is not a definition field (${FIELDS.join(", ")}); it is ignored, as in Harmont`,
      );
    }
  }
  if (d.name != null && typeof d.name !== "string") fail(`pipeline "${slug}": name must be a string, not ${show(d.name)}`);
  if (d.allowManual != null && typeof d.allowManual !== "boolean") {
    fail(`pipeline "${slug}": allowManual must be true or false, not ${show(d.allowManual)}`);
  }
  const triggers = d.triggers ?? [];
  if (!Array.isArray(triggers)) return fail(`pipeline "${slug}": triggers must be an array, not ${show(triggers)}`);
  const json = triggers.map((trigger: unknown) => {
    const toJSON = (trigger as { toJSON?: unknown } | null | undefined)?.toJSON;
    if (typeof toJSON !== "function") {
      return fail(`pipeline "${slug}": triggers are push(...) or pullRequest(...), not ${show(trigger)}`);
    }
    return toJSON.call(trigger) as unknown;
  });
  const ir = d.pipeline;
  if (typeof ir !== "object" || ir === null || Array.isArray(ir) || ir instanceof Step) {
    const hint = Array.isArray(ir) || ir instanceof Step ? "; wrap the steps: pipeline: pipeline([...])" : "";
    return fail(`pipeline "${slug}": \`pipeline\` must be what pipeline([...]) returns, not ${show(ir)}${hint}`);
  }
  const lowering = (ir as { [LOWERING]?: Lowering })[LOWERING];
  return {
    file,
    exported,
    slug,
    name: (d.name as string | undefined) ?? slug,
    allowManual: (d.allowManual as boolean | undefined) ?? true,
    triggers: JSON.stringify(json),
    ir,
    lowering: lowering !== undefined && !lowering.materialized ? lowering : null,
    where: lowering?.where ?? null,
  };
}

/** Every definition `files` export, in file order. */
export function prepare(files: readonly ModuleFile[]): Prepared[] {
  const out: Prepared[] = [];
  for (const { file, exports } of files) {
    const exported = exports.default != null ? "default" : "pipelines";
    const value = exports[exported];
    if (value == null) continue;
    for (const item of Array.isArray(value) ? value : [value]) out.push(definition(item, file, exported));
  }
  return out;
}

/** What `pipeline()` kept for `ir`'s graph, or `null` for an IR it did not make. */
export function loweringOf(ir: unknown): Lowering | null {
  if (typeof ir !== "object" || ir === null) return null;
  return (ir as { [LOWERING]?: Lowering })[LOWERING] ?? null;
}

/** `ir` with its graph made afresh in JavaScript, as JSON (for tests comparing the two ways of making it). */
export function lowerInJs(ir: PipelineIR): string {
  const lowering = loweringOf(ir);
  if (lowering === null) throw new Error("not an IR pipeline() made");
  return JSON.stringify({
    version: ir.version,
    timeout_seconds: ir.timeout_seconds,
    network: ir.network,
    volumes: ir.volumes,
    graph: lowerGraph(lowering),
  });
}
