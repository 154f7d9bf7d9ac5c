/** `pipeline()`: the IR it returns, how leaves become nodes and edges, and its checks. */

import { compose, forever, onChange, pipeline, scratch, sh, timeout, ttl, wait } from "@harmont/hm";
import type { Step } from "@harmont/hm";
import { assert, assertEquals, assertSame, assertThrows } from "./assert.ts";
import { BASE_ENV, edges, envByKey, graphOf, keys, parents, stepsByKey } from "./helpers.ts";

export const tests: Record<string, () => void> = {
  "the IR is version 0 with a petgraph graph"() {
    const ir = pipeline([sh("echo", { label: "hello" })]);
    assertEquals(Object.keys(ir), ["version", "graph"]);
    assertEquals(ir.version, "0");
    assertEquals([ir.graph.node_holes, ir.graph.edge_property], [[], "directed"]);
    assertEquals(ir.graph.nodes, [
      { step: { key: "hello", cmd: "echo", label: "hello", image: "ubuntu:24.04" }, env: BASE_ENV },
    ]);
  },

  "a chain is emitted parents first, with builds_in edges"() {
    const c = sh("a", { label: "a" }).sh("b", { label: "b" }).sh("c", { label: "c" });
    const graph = graphOf([c]);
    assertEquals(keys(graph), ["a", "b", "c"]);
    assertEquals(graph.edges, [
      [0, 1, "builds_in"],
      [1, 2, "builds_in"],
    ]);
  },

  "a shared ancestor is emitted once, leaves in order"() {
    const base = sh("install", { label: "install" });
    const graph = graphOf([base.sh("a", { label: "a" }), base.sh("b", { label: "b" }), base]);
    assertEquals(keys(graph), ["install", "a", "b"]);
    assertEquals(parents(graph), { a: "install", b: "install" });
  },

  "forks and scratch roots are not nodes; children build on the nearest command"() {
    const base = sh("install", { label: "install" });
    const fork = base.fork({ label: "branch" });
    const graph = graphOf([fork.sh("t", { label: "t" }), fork.fork().sh("u", { label: "u" }), scratch()]);
    assertEquals(keys(graph), ["install", "t", "u"]);
    assertEquals(parents(graph), { t: "install", u: "install" });
  },

  "after a wait every step depends on each step emitted since the barrier before"() {
    const a = sh("a", { label: "a" });
    const b = sh("b", { label: "b" });
    const c = a.sh("c", { label: "c" });
    const d = sh("d", { label: "d" });
    const graph = graphOf([a, b, wait(), c, d, wait(), sh("e", { label: "e" })]);
    assertEquals(edges(graph, "depends_on"), [
      ["a", "c"],
      ["b", "c"],
      ["a", "d"],
      ["b", "d"],
      ["c", "e"],
      ["d", "e"],
    ]);
  },

  "a wait's ancestors come after it when first emitted after it"() {
    const install = sh("install", { label: "install" });
    const graph = graphOf([sh("lint", { label: "lint" }), wait(), install.sh("test", { label: "test" })]);
    assertEquals(keys(graph), ["lint", "install", "test"]);
    assertEquals(edges(graph, "depends_on"), [
      ["lint", "install"],
      ["lint", "test"],
    ]);
  },

  "edges come node by node: builds_in, then depends_on"() {
    const graph = graphOf([sh("a", { label: "a" }), wait(), sh("b", { label: "b" }).sh("c", { label: "c" })]);
    assertEquals(graph.edges, [
      [0, 1, "depends_on"],
      [1, 2, "builds_in"],
      [0, 2, "depends_on"],
    ]);
  },

  "a leading wait, and a wait right after another, wait for nothing"() {
    assertEquals(graphOf([wait(), sh("a")]).edges, []);
    const graph = graphOf([sh("a", { label: "a" }), wait(), wait(), sh("b", { label: "b" })]);
    assertEquals(edges(graph, "depends_on"), []);
  },

  "a trailing wait adds nothing"() {
    assertEquals(graphOf([sh("a"), wait()]).edges, []);
  },

  "a step built on a wait is a barrier where the wait is emitted"() {
    const barrier = wait();
    const graph = graphOf([sh("a", { label: "a" }), barrier.sh("b", { label: "b" })]);
    assertEquals(edges(graph, "depends_on"), [["a", "b"]]);
    assertEquals(stepsByKey(graph).b?.image, "ubuntu:24.04");
  },

  "continueOnFailure marks the steps that depend on the wait (an addition of hm's)"() {
    const graph = graphOf([
      wait({ continueOnFailure: true }),
      sh("first", { label: "first" }),
      wait({ continueOnFailure: true }),
      sh("cleanup", { label: "cleanup" }).sh("report", { label: "report" }),
      wait(),
      sh("last", { label: "last" }),
    ]);
    const steps = stepsByKey(graph);
    assertEquals(
      ["first", "cleanup", "report", "last"].map((k) => steps[k]?.continue_on_failure),
      [undefined, true, true, undefined],
    );
  },

  "env: hm's defaults, then the pipeline's, then the step's"() {
    const graph = graphOf(
      [sh("a", { label: "a", env: { X: "step", S: "1" } }), sh("b", { label: "b" })],
      { env: { X: "pipe", P: "1", TERM: "xterm" } },
    );
    assertEquals(envByKey(graph), {
      a: { DEBIAN_FRONTEND: "noninteractive", TERM: "xterm", X: "step", P: "1", S: "1" },
      b: { DEBIAN_FRONTEND: "noninteractive", TERM: "xterm", X: "pipe", P: "1" },
    });
    assert(!("env" in (stepsByKey(graph).a ?? {})), "a step's own env stays out of the step");
  },

  "the pipeline's env is read when pipeline() is called"() {
    const env = { STAGE: "one" };
    const ir = pipeline([sh("a")], { env });
    env.STAGE = "two";
    assertEquals(ir.graph.nodes[0]?.env.STAGE, "one");
  },

  "optional fields appear only when set, in Harmont's order"() {
    const plain = graphOf([sh("make")]).nodes[0]?.step ?? {};
    assertEquals(Object.keys(plain), ["key", "cmd", "image"]);
    const step = timeout(
      600,
      sh("make", { label: "build", cache: forever(), image: "img", runner: "vm", runnerArgs: { cpus: 2 } }),
    );
    const full = graphOf([step]).nodes[0]?.step ?? {};
    assertEquals(Object.keys(full), ["key", "cmd", "label", "cache", "timeout_seconds", "image", "runner", "runner_args"]);
    assertEquals(full, {
      key: "build",
      cmd: "make",
      label: "build",
      cache: { policy: "forever", env_keys: [] },
      timeout_seconds: 600,
      image: "img",
      runner: "vm",
      runner_args: { cpus: 2 },
    });
  },

  "cache policies in the IR"() {
    const policies = [
      forever({ envKeys: ["CI"] }),
      ttl(3600),
      ttl(60, { envKeys: ["A", "B"] }),
      onChange("src/", "**/*.rs"),
      compose(ttl(86400), onChange("lock")),
    ];
    const graph = graphOf(policies.map((cache, i) => sh(`s${i}`, { cache })));
    assertEquals(
      graph.nodes.map((n) => n.step.cache),
      [
        { policy: "forever", env_keys: ["CI"] },
        { policy: "ttl", duration_seconds: 3600, env_keys: [] },
        { policy: "ttl", duration_seconds: 60, env_keys: ["A", "B"] },
        { policy: "on_change", paths: ["src/", "**/*.rs"] },
        {
          policy: "compose",
          sub_policies: [
            { policy: "ttl", duration_seconds: 86400, env_keys: [] },
            { policy: "on_change", paths: ["lock"] },
          ],
        },
      ],
    );
  },

  "imageless roots get ubuntu:24.04, children no image"() {
    const root = sh("p", { label: "p" });
    const graph = graphOf([root.sh("c", { label: "c" }), scratch({ image: "alpine:3.20" }).sh("a", { label: "a" })]);
    const steps = stepsByKey(graph);
    assertEquals([steps.p?.image, steps.c?.image, steps.a?.image], ["ubuntu:24.04", undefined, "alpine:3.20"]);
    assert(!("default_image" in pipeline([root])));
  },

  "a child's own image stays"() {
    const graph = graphOf([sh("p", { label: "p" }).sh("c", { label: "c", image: "other" })]);
    assertEquals(stepsByKey(graph).c?.image, "other");
  },

  "defaultImage replaces ubuntu:24.04 on imageless roots (an addition of hm's)"() {
    const graph = graphOf([sh("a", { label: "a" }).sh("b", { label: "b" }), sh("c", { label: "c", image: "own" })], {
      defaultImage: "debian:12",
    });
    const steps = stepsByKey(graph);
    assertEquals([steps.a?.image, steps.b?.image, steps.c?.image], ["debian:12", undefined, "own"]);
  },

  "nested arrays of leaves are flattened (an addition of hm's)"() {
    const a = sh("a", { label: "a" });
    const graph = graphOf([[a, [sh("b", { label: "b" })]], wait(), [[sh("c", { label: "c" })]]] as never);
    assertEquals(keys(graph), ["a", "b", "c"]);
    assertEquals(edges(graph, "depends_on"), [
      ["a", "c"],
      ["b", "c"],
    ]);
  },

  "a pipeline timeout is timeout_seconds"() {
    const ir = pipeline([sh("x")], { timeout: "30m" });
    assertEquals(ir.timeout_seconds, 1800);
    assertEquals(Object.keys(ir), ["version", "graph", "timeout_seconds"]);
    assertEquals(pipeline([sh("x")], { timeout: 90 }).timeout_seconds, 90);
    assertEquals("timeout_seconds" in pipeline([sh("x")]), false);
    assertThrows(() => pipeline([sh("x")], { timeout: "soon" }), "invalid timeout duration");
  },

  "a pipeline's network is written after the timeout only when given (an addition of hm's)"() {
    const ir = pipeline([sh("x")], { timeout: 60, network: "none" });
    assertEquals(ir.network, "none");
    assertEquals(Object.keys(ir), ["version", "graph", "timeout_seconds", "network"]);
    assertEquals(pipeline([sh("x")], { network: "host" }).network, "host");
    assertEquals("network" in pipeline([sh("x")]), false);
    assertEquals(JSON.parse(JSON.stringify(ir)).network, "none");
    assertThrows(
      () => pipeline([sh("x")], { network: "bridge" } as never),
      'pipeline: network must be "host" or "none", not "bridge"',
      TypeError,
    );
    assertThrows(() => pipeline([sh("x")], { network: false } as never), "not false", TypeError);
  },

  "pipeline() checks its arguments when called"() {
    assertThrows(() => pipeline(sh("x") as never), "pipeline() expects an array of steps as its first argument");
    assertThrows(() => pipeline([]), "pipeline must have at least one leaf");
    assertThrows(() => pipeline([[]] as never), "at least one leaf");
    assertThrows(() => pipeline([sh("x")], { envs: {} } as never), "pipeline: unknown option `envs`", TypeError);
    assertThrows(() => pipeline([sh("x")], { env: { A: 1 } } as never), "pipeline: env: the value of A must be a string");
    assertThrows(() => pipeline([sh("x"), "make"] as never), "pipeline: leaf 1 must be a step, not \"make\"", TypeError);
    assertThrows(() => pipeline([[sh("x"), undefined]] as never), "pipeline: leaf 0.1 must be a step, not undefined");
  },

  "a leaf that is a project or a pipeline says what to pass"() {
    const project = { install: () => sh("x"), build: () => sh("y") };
    assertThrows(() => pipeline([project] as never), "pass its actions");
    assertThrows(() => pipeline([{ ci: () => [] }] as never), "project.ci()");
    assertThrows(() => pipeline([pipeline([sh("x")])] as never), "list the steps instead of a pipeline");
  },

  "the graph is made once, when first read"() {
    const ir = pipeline([sh("a", { label: "a" })]);
    const graph = ir.graph;
    assertSame(ir.graph, graph);
    const spread = { ...ir };
    assertSame(spread.graph, graph);
    assertEquals(JSON.parse(JSON.stringify(ir)), { version: "0", graph });
    assertEquals(Object.getOwnPropertyDescriptor(ir, "graph")?.writable, true);
  },

  "the graph can be replaced"() {
    const ir = pipeline([sh("a")]);
    const replacement = { nodes: [], node_holes: [], edge_property: "directed" as const, edges: [] };
    ir.graph = replacement;
    assertSame(ir.graph, replacement);
    const read = pipeline([sh("a")]);
    const before = read.graph;
    read.graph = replacement;
    assert(read.graph !== before);
  },

  "a frozen IR still gives its graph"() {
    const ir = Object.freeze(pipeline([sh("a", { label: "a" })]));
    assertEquals(keys(ir.graph), ["a"]);
    assertSame(ir.graph, ir.graph);
  },

  "two steps with one key: the parent edge goes to the first (validation refuses the pipeline)"() {
    const first = sh("a", { key: "k" });
    const second = sh("b", { key: "k" });
    const graph = graphOf([first, second, second.sh("c", { label: "c" })]);
    assertEquals(keys(graph), ["k", "k", "c"]);
    assertEquals(graph.edges, [[0, 2, "builds_in"]]);
  },

  "leaves may be listed twice"() {
    const a = sh("a", { label: "a" });
    assertEquals(keys(graphOf([a, a, a.sh("b", { label: "b" })])), ["a", "b"]);
  },

  "a pipeline of a scratch root alone has no nodes"() {
    assertEquals(graphOf([scratch()]).nodes, []);
  },

  "steps keep no trace of pipelines: one step in two pipelines"() {
    const step: Step = sh("a", { label: "a" });
    assertEquals(keys(graphOf([step])), keys(graphOf([step, wait()])));
  },
};
