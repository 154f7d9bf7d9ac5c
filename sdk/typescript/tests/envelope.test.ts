/** renderEnvelope and the cache keys Harmont's SDKs write (`cache.key`). */

import { compose, forever, onChange, pipeline, push, pullRequest, renderEnvelope, resolvePipelineCacheKeys, sh, ttl } from "@harmont/hm";
import type { CacheKeyOptions, PipelineDefinition } from "@harmont/hm";
import { host, sha256Hex } from "@harmont/hm/src/host.ts";
import { assert, assertEquals, assertThrows } from "./assert.ts";
import type { Graph } from "./helpers.ts";

const BASE = "tests/fixtures/keygen";
const NUL = "\0";

function options(overrides?: Partial<CacheKeyOptions>): CacheKeyOptions {
  return { pipelineOrg: "acme", pipelineSlug: "ci", now: 1_000_000, basePath: BASE, env: {}, ...overrides };
}

/** The cache key of a step with no cached parent. */
function rootKey(stepKey: string, part: string, parent = "scratch"): string {
  return sha256Hex(["acme", "ci", stepKey, parent, part].join(NUL));
}

function keyOf(graph: Graph, i = 0): string {
  return (graph.nodes[i]?.step.cache as { key: string }).key;
}

function keyed(cache: Parameters<typeof sh>[1], cmd = "make"): Graph {
  const graph = pipeline([sh(cmd, { label: "build", ...cache })]).graph;
  resolvePipelineCacheKeys(graph, options());
  return graph;
}

const file = (path: string) => sha256Hex(host().readBytes(`${BASE}/${path}`));

export const tests: Record<string, () => void> = {
  "forever: the command and the env keys named"() {
    assertEquals(keyOf(keyed({ cache: forever() })), rootKey("build", `forever-${sha256Hex(`make${NUL}`)}`));
    const graph = pipeline([sh("make", { label: "build", cache: forever({ envKeys: ["B", "A"] }) })]).graph;
    resolvePipelineCacheKeys(graph, options({ env: { A: "1" } }));
    assertEquals(keyOf(graph), rootKey("build", `forever-${sha256Hex(`make${NUL}A=1${NUL}B=${NUL}`)}`));
  },

  "ttl: the window of now"() {
    assertEquals(keyOf(keyed({ cache: ttl(3600) })), rootKey("build", `ttl-277-${sha256Hex(`make${NUL}`)}`));
  },

  "on_change: the files' hashes, sorted by path; a missing path is left out"() {
    const part = `sha-${sha256Hex(`${file("a.txt")}${NUL}`)}`;
    assertEquals(keyOf(keyed({ cache: onChange("missing", "./a.txt") })), rootKey("build", part));
  },

  "on_change: a directory hashes its files' paths and bytes"() {
    const dir = sha256Hex(
      "b.txt",
      NUL,
      host().readBytes(`${BASE}/dir/b.txt`),
      NUL,
      "sub/c.txt",
      NUL,
      host().readBytes(`${BASE}/dir/sub/c.txt`),
      NUL,
    );
    assertEquals(keyOf(keyed({ cache: onChange("dir") })), rootKey("build", `sha-${sha256Hex(`${dir}${NUL}`)}`));
  },

  "on_change: globs, ** once per file under each directory as Harmont walks them"() {
    const [b, c] = [file("dir/b.txt"), file("dir/sub/c.txt")];
    assertEquals(keyOf(keyed({ cache: onChange("dir/**/*.txt") })), rootKey("build", `sha-${sha256Hex(`${b}${NUL}${b}${NUL}${c}${NUL}`)}`));
    assertEquals(keyOf(keyed({ cache: onChange("*.txt") })), rootKey("build", `sha-${sha256Hex(`${file("a.txt")}${NUL}`)}`));
    assertEquals(keyOf(keyed({ cache: onChange("dir/?.txt") })), rootKey("build", `sha-${sha256Hex(`${b}${NUL}`)}`));
  },

  "compose: its policies' parts"() {
    const parts = [`ttl-277-${sha256Hex(`make${NUL}`)}`, `sha-${sha256Hex(`${file("a.txt")}${NUL}`)}`];
    assertEquals(
      keyOf(keyed({ cache: compose(ttl(3600), onChange("a.txt")) })),
      rootKey("build", `compose-${sha256Hex(parts.join(""))}`),
    );
  },

  "a child's key builds on its parent's; uncached steps get none"() {
    const parent = sh("apt", { label: "apt", cache: forever() });
    const graph = pipeline([parent.sh("make", { label: "build", cache: forever() }).sh("test", { label: "test" })]).graph;
    resolvePipelineCacheKeys(graph, options());
    const parentKey = rootKey("apt", `forever-${sha256Hex(`apt${NUL}`)}`);
    assertEquals(keyOf(graph, 0), parentKey);
    assertEquals(keyOf(graph, 1), rootKey("build", `forever-${sha256Hex(`make${NUL}`)}`, parentKey));
    assertEquals(graph.nodes[2]?.step.cache, undefined);
  },

  "a cached step on an uncached parent has no key"() {
    const graph = pipeline([sh("a", { label: "a" }).sh("b", { cache: forever() })]).graph;
    assertThrows(() => resolvePipelineCacheKeys(graph, options()), 'step references builds_in "a" which has no cached key');
  },

  "an IR written by hand gets keys too"() {
    const graph: Graph = {
      nodes: [{ step: { key: "build", cmd: "make build", cache: { policy: "forever", env_keys: [] } }, env: {} }],
      node_holes: [],
      edge_property: "directed",
      edges: [],
    };
    resolvePipelineCacheKeys(graph, options({ basePath: "/nonexistent" }));
    assertEquals(keyOf(graph), rootKey("build", `forever-${sha256Hex(`make build${NUL}`)}`));
  },

  "the envelope: fields, defaults and trigger JSON"() {
    const definitions: PipelineDefinition[] = [
      {
        slug: "my-ci",
        name: "My CI",
        allowManual: false,
        triggers: [push({ branch: "main" }), pullRequest({ branches: "develop" })],
        pipeline: pipeline([sh("echo", { label: "hello" })]),
      },
      { slug: "deploy", pipeline: pipeline([sh("echo")]) },
    ];
    const envelope = JSON.parse(renderEnvelope(definitions));
    assertEquals(Object.keys(envelope), ["schema_version", "pipelines"]);
    assertEquals(envelope.schema_version, "1");
    const [first, second] = envelope.pipelines;
    assertEquals(Object.keys(first), ["slug", "name", "allow_manual", "triggers", "definition"]);
    assertEquals([first.name, first.allow_manual], ["My CI", false]);
    assertEquals(first.triggers, [
      { event: "push", branches: ["main"] },
      { event: "pull_request", branches: ["develop"], types: ["opened", "synchronize", "reopened"] },
    ]);
    assertEquals(first.definition.graph.nodes[0].step.key, "hello");
    assertEquals([second.name, second.allow_manual, second.triggers], ["deploy", true, []]);
  },

  "cached steps need a basePath, and get keys with one"() {
    const def = (): PipelineDefinition => ({ slug: "ci", pipeline: pipeline([sh("apt", { label: "apt", cache: forever() })]) });
    assertThrows(
      () => renderEnvelope([def()]),
      'Pipeline "ci" contains cached steps but no basePath was provided. Pass { basePath: process.cwd() } as the second argument to renderEnvelope().',
    );
    const defined = def();
    const envelope = JSON.parse(renderEnvelope([defined], { basePath: BASE, pipelineOrg: "acme", env: {} }));
    const expected = rootKey("apt", `forever-${sha256Hex(`apt${NUL}`)}`);
    assertEquals(envelope.pipelines[0].definition.graph.nodes[0].step.cache.key, expected);
    // The key is written into the definition's own IR.
    assertEquals((defined.pipeline.graph.nodes[0]?.step.cache as { key: string }).key, expected);
  },

  "the organisation defaults to default"() {
    const envelope = JSON.parse(
      renderEnvelope([{ slug: "ci", pipeline: pipeline([sh("apt", { label: "apt", cache: forever() })]) }], {
        basePath: BASE,
        env: {},
      }),
    );
    const key = envelope.pipelines[0].definition.graph.nodes[0].step.cache.key;
    const org = host().env().HM_PIPELINE_ORG ?? "default";
    assertEquals(key, sha256Hex([org, "ci", "apt", "scratch", `forever-${sha256Hex(`apt${NUL}`)}`].join(NUL)));
    assert(typeof key === "string" && key.length === 64);
  },
};
