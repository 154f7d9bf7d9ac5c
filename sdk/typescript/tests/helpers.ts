/** Reading the IR in tests. */

import { pipeline } from "@harmont/hm";
import type { PipelineIR, Step } from "@harmont/hm";

export type Graph = PipelineIR["graph"];
export type IrStep = Record<string, unknown>;

export const BASE_ENV = { DEBIAN_FRONTEND: "noninteractive", TERM: "dumb" };

/** The graph of a pipeline of `leaves`. */
export function graphOf(leaves: Step[] | unknown[], opts?: Parameters<typeof pipeline>[1]): Graph {
  return pipeline(leaves as Step[], opts).graph;
}

/** Step keys in node order. */
export function keys(graph: Graph): string[] {
  return graph.nodes.map((n) => n.step.key as string);
}

/** Commands in node order. */
export function cmds(graph: Graph): string[] {
  return graph.nodes.map((n) => n.step.cmd as string);
}

export function stepsByKey(graph: Graph): Record<string, IrStep> {
  return Object.fromEntries(graph.nodes.map((n) => [n.step.key as string, n.step]));
}

export function envByKey(graph: Graph): Record<string, Record<string, string>> {
  return Object.fromEntries(graph.nodes.map((n) => [n.step.key as string, n.env]));
}

/** `[source key, target key]` of every edge of `kind`, in edge order. */
export function edges(graph: Graph, kind: "builds_in" | "depends_on"): Array<[string, string]> {
  const names = keys(graph);
  return graph.edges.filter(([, , k]) => k === kind).map(([src, dst]) => [names[src] as string, names[dst] as string]);
}

/** The `builds_in` parent of every step that has one. */
export function parents(graph: Graph): Record<string, string> {
  return Object.fromEntries(edges(graph, "builds_in").map(([src, dst]) => [dst, src]));
}

/** The step of `graph` whose command contains `needle`. */
export function stepWith(graph: Graph, needle: string): IrStep {
  const node = graph.nodes.find((n) => (n.step.cmd as string).includes(needle));
  if (node === undefined) throw new Error(`no step runs ${JSON.stringify(needle)}`);
  return node.step;
}

/** The commands of a step and its ancestors, root first. */
export function chain(step: Step): Array<string | null> {
  const out: Array<string | null> = [];
  for (let s: Step | null = step; s !== null; s = s._parent) out.unshift(s._cmd);
  return out;
}
