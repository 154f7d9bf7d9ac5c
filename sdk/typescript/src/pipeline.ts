/**
 * `pipeline()`: a pipeline's IR (`{version: "0", graph, timeout_seconds?}`)
 * from its leaves, the last step of each branch, with `wait()` barriers
 * between them.
 *
 * The arguments are checked at the call, but the graph is made when it is
 * first read (it is an enumerable property, so spreading the IR or
 * `JSON.stringify` reads it as any other). hm's engine makes the graphs
 * nobody read in Rust, from the same leaves and by the same rules, which
 * is several times faster than this module's JavaScript in hm's engine.
 */

import type { CachePolicy } from "./cache.ts";
import { parseDuration } from "./duration.ts";
import { resolveKeys } from "./keys.ts";
import { allowed, options, optionalEnv, optionalString, show } from "./options.ts";
import { Step } from "./step.ts";
import { volumesIr } from "./volume.ts";
import type { VolumeIR, Volumes } from "./volume.ts";

/** The image of a root step that names none. */
const DEFAULT_IMAGE = "ubuntu:24.04";

export interface PipelineOptions {
  /** Environment variables of every step (a step's own `env` wins). */
  readonly env?: Readonly<Record<string, string>>;
  /** The whole build's time limit: `"30m"`, `"1h"` or seconds. */
  readonly timeout?: string | number;
  /**
   * The image of root steps that name none (`ubuntu:24.04` when left
   * out). An addition of hm's: Harmont's SDK takes this option and
   * ignores it.
   */
  readonly defaultImage?: string;
  /**
   * `"none"`: the pipeline's steps get no network but a loopback of their
   * own; `"host"` (what `hm` uses when left out) shares the host's. An
   * addition of hm's, written as the IR's `network`.
   */
  readonly network?: "host" | "none";
  /**
   * Cache volumes mounted into every step, as a step's `volumes` are (a
   * step's own for the same path wins). An addition of hm's, written as
   * the IR's `volumes`.
   */
  readonly volumes?: Volumes;
}

export interface PipelineIR {
  version: string;
  timeout_seconds?: number;
  network?: "host" | "none";
  volumes?: Record<string, VolumeIR>;
  graph: {
    nodes: GraphNode[];
    node_holes: never[];
    edge_property: "directed";
    edges: [number, number, string][];
  };
}

interface GraphNode {
  step: Record<string, unknown>;
  env: Record<string, string>;
}

/** @internal What a pipeline was made from, kept for its graph. */
export interface Lowering {
  /** The leaves, nested arrays flattened. */
  readonly leaves: readonly Step[];
  readonly env: Readonly<Record<string, string>> | undefined;
  readonly defaultImage: string;
  /** The stack where `pipeline()` was called. */
  readonly where: string;
  /** Whether the graph was read (or replaced); the engine then reads the IR object. */
  materialized: boolean;
  graph: PipelineIR["graph"] | undefined;
}

/** @internal Where an IR keeps its `Lowering`. */
export const LOWERING: unique symbol = Symbol("@harmont/hm lowering");

const PIPELINE_OPTIONS = allowed("env", "timeout", "defaultImage", "network", "volumes");

/** What `value`, a leaf that is no step, is, with what to pass instead. */
function notAStep(value: unknown, place: string): TypeError {
  let hint = "";
  if (typeof value === "object" && value !== null) {
    const o = value as Record<string, unknown>;
    if (typeof o.ci === "function") hint = "\n  → pass its actions, e.g. project.ci() or project.test()";
    else if (typeof o.install === "function") hint = "\n  → pass its actions, e.g. project.build(), or project.install()";
    else if ("graph" in o && "version" in o) hint = "\n  → a pipeline's leaves are steps; list the steps instead of a pipeline";
  }
  return new TypeError(`pipeline: leaf ${place} must be a step, not ${show(value)}${hint}`);
}

/** `leaves` with nested arrays flattened (an addition of hm's), each checked to be a step. */
function flatten(leaves: readonly unknown[], out: Step[], prefix: string): void {
  for (let i = 0; i < leaves.length; i++) {
    const leaf = leaves[i];
    if (leaf instanceof Step) out.push(leaf);
    else if (Array.isArray(leaf)) flatten(leaf, out, `${prefix}${i}.`);
    else throw notAStep(leaf, `${prefix}${i}`);
  }
}

function readGraph(this: PipelineIR & { [LOWERING]?: Lowering }): PipelineIR["graph"] | undefined {
  const lowering = this[LOWERING];
  if (lowering === undefined) return undefined;
  if (lowering.graph === undefined) lowering.graph = lowerGraph(lowering);
  lowering.materialized = true;
  settle(this, lowering.graph);
  return lowering.graph;
}

function writeGraph(this: PipelineIR & { [LOWERING]?: Lowering }, value: PipelineIR["graph"]): void {
  const lowering = this[LOWERING];
  if (lowering !== undefined) {
    lowering.materialized = true;
    lowering.graph = value;
  }
  settle(this, value);
}

/** Turns `ir.graph` into a plain data property holding `graph`. */
function settle(ir: object, graph: unknown): void {
  const own = Object.getOwnPropertyDescriptor(ir, "graph");
  if (own?.configurable) {
    Object.defineProperty(ir, "graph", { value: graph, writable: true, enumerable: true, configurable: true });
  }
}

const GRAPH: PropertyDescriptor = { get: readGraph, set: writeGraph, enumerable: true, configurable: true };

/**
 * The IR of a pipeline whose branches end in `leaves`. Every step a leaf
 * builds on is in it once, parents first; a `wait()` in `leaves` makes
 * every step after it depend on every step emitted since the barrier
 * before.
 */
export function pipeline(leaves: Step[], opts?: PipelineOptions): PipelineIR {
  if (!Array.isArray(leaves)) {
    throw new Error("pipeline() expects an array of steps as its first argument");
  }
  const o = options(opts, PIPELINE_OPTIONS, "pipeline");
  optionalEnv(o.env, "pipeline: env");
  optionalString(o.defaultImage, "pipeline: defaultImage");
  const network = o.network as unknown;
  if (network !== undefined && network !== null && network !== "host" && network !== "none") {
    throw new TypeError(`pipeline: network must be "host" or "none", not ${show(network)}`);
  }
  const volumes = volumesIr(o.volumes, "pipeline");
  const flat: Step[] = [];
  flatten(leaves, flat, "");
  if (flat.length === 0) {
    throw new Error(
      "pipeline must have at least one leaf — pass the terminal step(s) of each branch as the first argument",
    );
  }
  const ir = { version: "0" } as PipelineIR;
  Object.defineProperty(ir, "graph", GRAPH);
  if (o.timeout !== undefined && o.timeout !== null) {
    ir.timeout_seconds = parseDuration(o.timeout as string | number);
  }
  if (network === "host" || network === "none") ir.network = network;
  if (volumes !== undefined) ir.volumes = volumes;
  const env = o.env as Record<string, string> | undefined | null;
  const lowering: Lowering = {
    leaves: flat,
    env: env ? { ...env } : undefined,
    defaultImage: (o.defaultImage as string | undefined | null) ?? DEFAULT_IMAGE,
    where: new Error().stack ?? "",
    materialized: false,
    graph: undefined,
  };
  Object.defineProperty(ir, LOWERING, { value: lowering });
  const created = (globalThis as { __hm_created?: PipelineIR[] }).__hm_created;
  if (created !== undefined) created.push(ir);
  return ir;
}

/** Every step the leaves build on, once, parents before children, in leaf order; waits where they are listed. */
function collect(leaves: readonly Step[]): Step[] {
  const seen = new Set<number>();
  const ordered: Step[] = [];
  for (const leaf of leaves) {
    if (leaf._isWait) {
      ordered.push(leaf);
      continue;
    }
    const chain: Step[] = [];
    for (let step: Step | null = leaf; step !== null && !seen.has(step._id); step = step._parent) {
      chain.push(step);
    }
    for (let i = chain.length - 1; i >= 0; i--) {
      const step = chain[i] as Step;
      if (seen.has(step._id)) continue;
      seen.add(step._id);
      ordered.push(step);
    }
  }
  return ordered;
}

/** The nearest ancestor of `step` that runs a command. */
function commandParent(step: Step): Step | null {
  let parent = step._parent;
  while (parent !== null && (parent._cmd === null || parent._isWait)) parent = parent._parent;
  return parent;
}

function policyIr(policy: CachePolicy): Record<string, unknown> {
  switch (policy.kind) {
    case "forever":
      return { policy: "forever", env_keys: [...policy.envKeys] };
    case "ttl":
      return { policy: "ttl", duration_seconds: policy.durationSeconds, env_keys: [...policy.envKeys] };
    case "on_change":
      return { policy: "on_change", paths: [...policy.paths] };
    case "compose":
      return { policy: "compose", sub_policies: policy.policies.map(policyIr) };
  }
}

/** @internal The graph of a pipeline, made in JavaScript. */
export function lowerGraph(lowering: Lowering): PipelineIR["graph"] {
  const ordered = collect(lowering.leaves);
  const commands = ordered.filter((s) => s._cmd !== null && !s._isWait);
  const keys = resolveKeys(commands);
  const index = new Map<number, number>();
  // A parent is found by its key, so with two steps of one key (which
  // validation refuses) the edge goes to the first of them.
  const firstOfKey = new Map<string, number>();
  commands.forEach((step, i) => {
    index.set(step._id, i);
    const key = keys.get(step._id) as string;
    if (!firstOfKey.has(key)) firstOfKey.set(key, i);
  });

  const nodes: GraphNode[] = [];
  const edges: [number, number, string][] = [];
  const hasParent: boolean[] = [];
  let sinceBarrier: number[] = [];
  let waitingOn: number[] = [];
  let lenient = false;
  for (const s of ordered) {
    if (s._isWait) {
      waitingOn = sinceBarrier;
      sinceBarrier = [];
      lenient = s._continueOnFailure;
      continue;
    }
    if (s._cmd === null) continue;
    const i = index.get(s._id) as number;
    const step: Record<string, unknown> = { key: keys.get(s._id), cmd: s._cmd };
    if (s._label != null) step.label = s._label;
    if (s._cache != null) step.cache = policyIr(s._cache);
    if (s._timeoutSeconds != null) step.timeout_seconds = s._timeoutSeconds;
    if (s._image != null) step.image = s._image;
    if (s._runner != null) step.runner = s._runner;
    if (s._runnerArgs != null) step.runner_args = s._runnerArgs;
    if (lenient && waitingOn.length > 0) step.continue_on_failure = true;
    if (s._volumes != null) step.volumes = { ...s._volumes };
    const env: Record<string, string> = { DEBIAN_FRONTEND: "noninteractive", TERM: "dumb", ...lowering.env, ...s._env };
    nodes.push({ step, env });
    const parent = commandParent(s);
    hasParent.push(parent !== null);
    if (parent !== null) edges.push([firstOfKey.get(keys.get(parent._id) as string) as number, i, "builds_in"]);
    for (const before of waitingOn) edges.push([before, i, "depends_on"]);
    sinceBarrier.push(i);
  }
  nodes.forEach((node, i) => {
    if (!hasParent[i] && !("image" in node.step)) node.step.image = lowering.defaultImage;
  });
  return { nodes, node_holes: [], edge_property: "directed", edges };
}
