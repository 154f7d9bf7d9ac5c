/**
 * Rendering to hm's IR. The SDK reads and checks the definitions every file
 * exports, calls their pipeline functions and flattens what they return to
 * a sequence of steps and waits; hm's engine turns that into the IR (step
 * keys, environments, edges), node for node and key for key what Python's
 * SDK renders for the same pipelines.
 */

import type { CachePolicyIr } from "./cache.ts";
import { HarmontError, show } from "./errors.ts";
import { PipelineBody, Trigger, Wait } from "./pipeline.ts";
import type { PipelineSource, Steps, TriggerIr } from "./pipeline.ts";
import { Fork, Step } from "./step.ts";

declare global {
  /**
   * hm's engine renders `pipelines` to the envelope as JSON
   * (`{"envelope": ..., "sources": [...]}`), or calls `fail` with what is wrong
   * and the file of the pipeline.
   */
  function __hm_render(pipelines: Prepared[], fail: (message: string, file: string) => never): string;
}

/** What a slug must match, whole. */
export const SLUG = /^[a-z][a-z0-9-]{0,63}$/;

/** One file's module as the engine hands it over. */
export interface ModuleFile {
  /** The file, relative to the project root (`.hm/pipeline.ts`). */
  file: string;
  /** The module's exports: `default` and/or `pipelines`. */
  exports: Record<string, unknown>;
}

/** A step of the IR. */
export interface IrStep {
  key: string;
  cmd: string;
  label?: string;
  image?: string;
  env?: Record<string, string>;
  cache?: CachePolicyIr;
  timeout_seconds?: number;
  runner?: string;
  runner_args?: unknown;
  continue_on_failure?: true;
}

/** A pipeline's IR. */
export interface IrDefinition {
  version: "0";
  nodes: Array<{ step: IrStep; env: Record<string, string> }>;
  node_holes: [];
  edge_property: "directed";
  edges: Array<[number, number, "builds_in" | "depends_on"]>;
  timeout_seconds?: number;
}

/** A pipeline's entry in the envelope. */
export interface EnvelopeEntry {
  slug: string;
  name: string;
  allow_manual: boolean;
  triggers: TriggerIr[];
  definition: IrDefinition;
}

/** A definition read and checked, with the file it came from. */
interface Definition {
  file: string;
  slug: string;
  name: string;
  allowManual: boolean;
  triggers: Trigger[];
  source: PipelineSource;
}

const FIELDS = ["slug", "name", "allowManual", "triggers", "pipeline"];

/** The pipelines every file exports, checked, in file order (`default` before `pipelines`). */
function definitions(files: readonly ModuleFile[]): Definition[] {
  const out: Definition[] = [];
  for (const { file, exports } of files) {
    for (const name of ["default", "pipelines"]) {
      const exported = exports?.[name];
      if (exported === undefined) continue;
      for (const value of Array.isArray(exported) ? exported : [exported]) {
        const defn = definition(value, file);
        const other = out.find((d) => d.slug === defn.slug);
        if (other) {
          throw new HarmontError(`\`${file}\`: duplicate pipeline slug \`${defn.slug}\` (also defined in ${other.file})`);
        }
        out.push(defn);
      }
    }
  }
  return out;
}

function definition(value: unknown, file: string): Definition {
  const fail = (message: string): never => {
    throw new HarmontError(`\`${file}\`: ${message}`);
  };
  if (
    typeof value !== "object" ||
    value === null ||
    Array.isArray(value) ||
    value instanceof Step ||
    value instanceof Fork ||
    value instanceof Wait ||
    value instanceof PipelineBody
  ) {
    return fail(`a pipeline definition is an object {slug, pipeline, name?, allowManual?, triggers?}, not ${show(value)}`);
  }
  const d = value as Record<string, unknown>;
  for (const field of Object.keys(d)) {
    if (!FIELDS.includes(field)) fail(`a pipeline definition has no field \`${field}\` (fields: ${FIELDS.join(", ")})`);
  }
  const slug = d.slug;
  if (typeof slug !== "string") return fail(`a pipeline's slug must be a string, not ${show(slug)}`);
  if (!SLUG.test(slug)) fail(`invalid pipeline slug \`${slug}\`: it must match ^[a-z][a-z0-9-]{0,63}$`);
  if (d.name !== undefined && d.name !== null && typeof d.name !== "string") {
    fail(`pipeline \`${slug}\`: name must be a string, not ${show(d.name)}`);
  }
  const triggers = d.triggers === undefined ? [] : d.triggers;
  if (!Array.isArray(triggers)) fail(`pipeline \`${slug}\`: triggers must be an array, not ${show(triggers)}`);
  for (const trigger of triggers as unknown[]) {
    if (!(trigger instanceof Trigger)) {
      fail(`triggers must be push(...) or pullRequest(...), not ${show(trigger)}`);
    }
  }
  if (d.pipeline === undefined) fail(`pipeline \`${slug}\` has no \`pipeline\` (its steps)`);
  return {
    file,
    slug,
    name: (d.name as string | undefined) ?? slug,
    allowManual: d.allowManual === undefined ? true : Boolean(d.allowManual),
    triggers: [...(triggers as Trigger[])],
    source: d.pipeline as PipelineSource,
  };
}

/** A pipeline's steps in order, a wait standing as its `continueOnFailure`. */
function flatten(items: unknown, out: Array<Step | boolean>): void {
  if (items === null || items === undefined) return;
  if (items instanceof Step) {
    if (items.isScratch) throw new HarmontError("a scratch root runs nothing by itself; call .sh(...) on it");
    out.push(items);
  } else if (items instanceof Fork) {
    flatten(items.step, out);
  } else if (items instanceof Wait) {
    out.push(items.continueOnFailure);
  } else if (Array.isArray(items)) {
    for (const item of items) flatten(item, out);
  } else if (typeof (items as { _hmActions?: unknown })._hmActions === "function") {
    flatten((items as { _hmActions(): unknown })._hmActions(), out);
  } else {
    throw new HarmontError(`a pipeline returns steps, lists of steps, waits or toolchain projects, not ${show(items)}`);
  }
}

/**
 * A pipeline ready for hm's engine to render: its definition, and its
 * steps and waits in order (a wait as its `continueOnFailure`). Each step
 * brings its ancestors; the engine walks them through `Step._record`.
 */
export interface Prepared {
  file: string;
  slug: string;
  name: string;
  allowManual: boolean;
  triggers: TriggerIr[];
  env: Readonly<Record<string, string>>;
  timeoutSeconds: number | null;
  sequence: Array<Step | boolean>;
}

function prepare(defn: Definition): Prepared {
  let result: unknown = defn.source;
  if (typeof result === "function") result = (result as () => unknown)();
  const body = result instanceof PipelineBody ? result : new PipelineBody(result as Steps, {}, null);
  const sequence: Array<Step | boolean> = [];
  flatten(body.steps, sequence);
  return {
    file: defn.file,
    slug: defn.slug,
    name: defn.name,
    allowManual: defn.allowManual,
    triggers: defn.triggers.map((t) => ({ ...t.ir })),
    env: body.env,
    timeoutSeconds: body.timeoutSeconds,
    sequence,
  };
}

/** Marks an error thrown while rendering with the file whose pipeline was rendering. */
function markFile(err: unknown, file: string): void {
  if (typeof err !== "object" || err === null || "hmFile" in err) return;
  try {
    Object.defineProperty(err, "hmFile", { value: file, enumerable: false, configurable: true });
  } catch {
    // A frozen error keeps its shape; the engine then knows no file.
  }
}

/**
 * Every pipeline `files` export, checked and called, in file order. An
 * error thrown by a pipeline function carries its file in `hmFile`.
 */
export function prepareFiles(files: readonly ModuleFile[]): Prepared[] {
  return definitions(files).map((defn) => {
    try {
      return prepare(defn);
    } catch (err) {
      markFile(err, defn.file);
      throw err;
    }
  });
}

/**
 * The envelope of every pipeline `files` export, with the file each came
 * from, as JSON: `{"envelope": {"schema_version": "1", "pipelines": [...]}, "sources": [...]}`.
 */
export function renderFiles(files: readonly ModuleFile[]): string {
  return globalThis.__hm_render(prepareFiles(files), (message, file) => {
    const err = new HarmontError(message);
    markFile(err, file);
    throw err;
  });
}
