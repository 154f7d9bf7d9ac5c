/** Rendering and reading IR in tests. */

import * as hm from "@harmont/hm";
import type { EnvelopeEntry, IrDefinition, IrStep, PipelineDefinition, PipelineSource } from "@harmont/hm";

declare global {
  /** The hex SHA-256 of `text`'s UTF-8 bytes; hm's test runner provides it. */
  function __hm_sha256(text: string): string;
}

/** What `__render` returns, parsed. */
export interface Rendered {
  envelope: { schema_version: string; pipelines: EnvelopeEntry[] };
  sources: string[];
}

/** The render of `definitions` exported as `default` by one file, `.hm/test.ts`. */
export function renderFile(...definitions: PipelineDefinition[]): Rendered {
  return JSON.parse(hm.__render([{ file: ".hm/test.ts", exports: { default: definitions } }])) as Rendered;
}

/** The envelope entry of `definition`, rendered alone. */
export function renderEntry(definition: PipelineDefinition): EnvelopeEntry {
  const { envelope } = renderFile(definition);
  if (envelope.pipelines.length !== 1) throw new Error("expected one pipeline");
  return envelope.pipelines[0] as EnvelopeEntry;
}

/** The IR definition of a pipeline `ci` running `pipeline`. */
export function render(pipeline: PipelineSource): IrDefinition {
  return renderEntry({ slug: "ci", pipeline }).definition;
}

/** Step keys in node order. */
export function keys(definition: IrDefinition): string[] {
  return definition.nodes.map((n) => n.step.key);
}

export function nodesByKey(definition: IrDefinition): Record<string, { step: IrStep; env: Record<string, string> }> {
  return Object.fromEntries(definition.nodes.map((n) => [n.step.key, n]));
}

export function stepsByKey(definition: IrDefinition): Record<string, IrStep> {
  return Object.fromEntries(definition.nodes.map((n) => [n.step.key, n.step]));
}

/** `[source key, target key]` of every edge of `kind`, in edge order. */
export function edges(definition: IrDefinition, kind: "builds_in" | "depends_on"): Array<[string, string]> {
  const names = keys(definition);
  return definition.edges
    .filter(([, , k]) => k === kind)
    .map(([src, dst]) => [names[src] as string, names[dst] as string]);
}

/** The `builds_in` parent of every step that has one. */
export function parents(definition: IrDefinition): Record<string, string> {
  return Object.fromEntries(edges(definition, "builds_in").map(([src, dst]) => [dst, src]));
}

/** The key a step gets from neither `key` nor a unique label. */
export function derivedKey(parentKey: string, cmd: string, position: number): string {
  return globalThis.__hm_sha256(`${parentKey}\x1f${cmd}\x1f${position}`).slice(0, 12);
}

export const BASE_ENV = { DEBIAN_FRONTEND: "noninteractive", TERM: "dumb" };
