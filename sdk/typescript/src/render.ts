/**
 * Rendering to hm's IR: the definitions every file exports become one
 * envelope, node for node and key for key what Python's SDK renders for the
 * same pipelines.
 */

import type { CachePolicy, CachePolicyIr } from "./cache.ts";
import { HarmontError, show } from "./errors.ts";
import { PipelineBody, Trigger, Wait } from "./pipeline.ts";
import type { PipelineSource, Steps, TriggerIr } from "./pipeline.ts";
import { DEFAULT_IMAGE, Fork, Step, slugify } from "./step.ts";

declare global {
  /** The hex SHA-256 of `text`'s UTF-8 bytes; hm's engine provides it. */
  function __hm_sha256(text: string): string;
}

/** What a slug must match, whole. */
export const SLUG = /^[a-z][a-z0-9-]{0,63}$/;
/** The environment every step starts with, before the pipeline's and its own. */
export const BASE_ENV: Readonly<Record<string, string>> = Object.freeze({
  DEBIAN_FRONTEND: "noninteractive",
  TERM: "dumb",
});

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

function flatten(items: unknown, out: Array<Step | Wait>): void {
  if (items === null || items === undefined) return;
  if (items instanceof Step) {
    if (items.isScratch) throw new HarmontError("a scratch root runs nothing by itself; call .sh(...) on it");
    out.push(items);
  } else if (items instanceof Fork) {
    flatten(items.step, out);
  } else if (items instanceof Wait) {
    out.push(items);
  } else if (Array.isArray(items)) {
    for (const item of items) flatten(item, out);
  } else if (typeof (items as { _hmActions?: unknown })._hmActions === "function") {
    flatten((items as { _hmActions(): unknown })._hmActions(), out);
  } else {
    throw new HarmontError(`a pipeline returns steps, lists of steps, waits or toolchain projects, not ${show(items)}`);
  }
}

/**
 * A key from what places a step: its parent's key, its command, and how many
 * steps with the same parent and command come before it in the pipeline.
 */
export function derivedKey(parentKey: string, cmd: string, position: number): string {
  const sha256 = globalThis.__hm_sha256;
  if (typeof sha256 !== "function") {
    throw new Error("globalThis.__hm_sha256 is missing: hm's engine provides it to the SDK");
  }
  return sha256(`${parentKey}\x1f${cmd}\x1f${position}`).slice(0, 12);
}

function count(counts: Map<string, number>, key: string): void {
  counts.set(key, (counts.get(key) ?? 0) + 1);
}

/** The pipeline's envelope entry, with its IR `definition`. */
function renderPipeline(defn: Definition): EnvelopeEntry {
  let result: unknown = defn.source;
  if (typeof result === "function") result = (result as () => unknown)();
  const body = result instanceof PipelineBody ? result : new PipelineBody(result as Steps, {}, null);
  const sequence: Array<Step | Wait> = [];
  flatten(body.steps, sequence);

  const nodes: Step[] = [];
  const index = new Map<Step, number>();
  const groups: number[][] = [[]];
  const waits: Wait[] = [];
  const emit = (step: Step): void => {
    const chain: Step[] = [];
    for (let walk: Step | null = step; walk !== null && !index.has(walk); walk = walk.parent) chain.push(walk);
    for (const node of chain.reverse()) {
      index.set(node, nodes.length);
      (groups[groups.length - 1] as number[]).push(nodes.length);
      nodes.push(node);
    }
  };
  for (const item of sequence) {
    if (item instanceof Wait) {
      groups.push([]);
      waits.push(item);
    } else {
      emit(item);
    }
  }
  const at = (step: Step): number => index.get(step) as number;

  // Keys: given, else the label's slug when no other step has it, else a hash.
  const slugs = nodes.map((n) => (n.key === null && n.label ? slugify(n.label) : ""));
  const taken = new Map<string, number>();
  for (const n of nodes) if (n.key) count(taken, n.key);
  for (const s of slugs) if (s) count(taken, s);
  const keys: string[] = [];
  const hashed = (i: number): boolean => {
    const node = nodes[i] as Step;
    const slug = slugs[i] as string;
    return !node.key && !(slug && taken.get(slug) === 1);
  };
  // Positions (earlier steps with the same parent and command) only matter
  // for hashed keys; with none, they are not counted.
  const positions: number[] = [];
  if (nodes.some((_, i) => hashed(i))) {
    const seenPlaces = new Map<string, number>();
    nodes.forEach((node) => {
      const place = `${node.parent !== null ? at(node.parent) : -1}\x00${node.cmd}`;
      const position = seenPlaces.get(place) ?? 0;
      seenPlaces.set(place, position + 1);
      positions.push(position);
    });
  }
  nodes.forEach((node, i) => {
    if (!hashed(i)) {
      keys.push(node.key || (slugs[i] as string));
    } else {
      const parentKey = node.parent !== null ? (keys[at(node.parent)] as string) : "";
      keys.push(derivedKey(parentKey, node.cmd ?? "", positions[i] as number));
    }
  });
  const seen = new Set<string>();
  for (const key of keys) {
    if (seen.has(key)) {
      throw new HarmontError(`pipeline \`${defn.slug}\`: two steps have the key \`${key}\`; give one of them another key`);
    }
    seen.add(key);
  }

  const lenient = new Set<number>();
  waits.forEach((w, i) => {
    if (w.continueOnFailure) for (const n of groups[i + 1] as number[]) lenient.add(n);
  });
  // Nodes without env of their own share one environment object, and every
  // policy is written out once: the output is only read.
  const sharedEnv = { ...BASE_ENV, ...body.env };
  const policies = new Map<CachePolicy, CachePolicyIr>();
  const policyIr = (policy: CachePolicy): CachePolicyIr => {
    let ir = policies.get(policy);
    if (ir === undefined) {
      ir = policy.toIr();
      policies.set(policy, ir);
    }
    return ir;
  };
  const irNodes = nodes.map((node, i) => {
    const step: IrStep = { key: keys[i] as string, cmd: node.cmd as string };
    if (node.label) step.label = node.label;
    const image = node.parent !== null ? node.image : node.image || DEFAULT_IMAGE;
    if (image) step.image = image;
    const hasEnv = node.env !== null && Object.keys(node.env).length > 0;
    if (hasEnv) step.env = { ...node.env };
    if (node.cache !== null) step.cache = policyIr(node.cache);
    if (node.timeoutSeconds !== null) step.timeout_seconds = node.timeoutSeconds;
    if (node.runner !== null) step.runner = node.runner;
    if (node.runnerArgs !== null) step.runner_args = node.runnerArgs;
    if (lenient.has(i)) step.continue_on_failure = true;
    const env = hasEnv ? { ...sharedEnv, ...node.env } : sharedEnv;
    return { step, env };
  });

  const edges: IrDefinition["edges"] = [];
  nodes.forEach((node, i) => {
    if (node.parent !== null) edges.push([at(node.parent), i, "builds_in"]);
  });
  // Each group waits for the last non-empty one before it, so `wait(), wait()` joins like one wait.
  let before: number[] = [];
  for (const after of groups) {
    for (const dst of after) for (const src of before) edges.push([src, dst, "depends_on"]);
    if (after.length > 0) before = after;
  }

  const definition: IrDefinition = {
    version: "0",
    nodes: irNodes,
    node_holes: [],
    edge_property: "directed",
    edges,
  };
  if (body.timeoutSeconds !== null) definition.timeout_seconds = body.timeoutSeconds;
  return {
    slug: defn.slug,
    name: defn.name,
    allow_manual: defn.allowManual,
    triggers: defn.triggers.map((t) => ({ ...t.ir })),
    definition,
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

/** What `renderFiles` returns, before it is JSON. */
export interface Rendered {
  envelope: { schema_version: "1"; pipelines: EnvelopeEntry[] };
  sources: string[];
}

/**
 * The envelope of every pipeline `files` export, with the file each came
 * from, as JSON: `{"envelope": {"schema_version": "1", "pipelines": [...]}, "sources": [...]}`.
 */
export function renderFiles(files: readonly ModuleFile[]): string {
  return JSON.stringify(renderFilesValue(files));
}

/** `renderFiles` before JSON: hm reads it straight out of the engine. */
export function renderFilesValue(files: readonly ModuleFile[]): Rendered {
  const defns = definitions(files);
  const pipelines: EnvelopeEntry[] = [];
  const sources: string[] = [];
  for (const defn of defns) {
    try {
      pipelines.push(renderPipeline(defn));
    } catch (err) {
      markFile(err, defn.file);
      throw err;
    }
    sources.push(defn.file);
  }
  return { envelope: { schema_version: "1", pipelines }, sources };
}
