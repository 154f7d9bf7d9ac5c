/** Pipeline definitions: options, triggers, pipeline() and the forms a pipeline's steps take. */

import * as hm from "@harmont/hm";
import { assert, assertEquals } from "./assert.ts";
import { keys, parents, render, renderEntry, renderFile } from "./helpers.ts";

const oneStep = () => hm.sh("make", { key: "make" });

export const tests: Record<string, () => void> = {
  "an entry with every option": () => {
    hm.__reset();
    const entry = renderEntry({
      slug: "ship-it",
      name: "Ship it",
      triggers: [hm.push({ branch: "main" }), hm.pr()],
      allowManual: false,
      pipeline: hm.pipeline(oneStep(), { env: { MODE: "release" }, timeout: "1h" }),
    });
    assertEquals(entry, {
      slug: "ship-it",
      name: "Ship it",
      allow_manual: false,
      triggers: [
        { type: "push", branches: ["main"] },
        { type: "pull_request", types: ["opened", "synchronize", "reopened"] },
      ],
      definition: {
        version: "0",
        nodes: [
          {
            step: { key: "make", cmd: "make", image: "ubuntu:24.04" },
            env: { DEBIAN_FRONTEND: "noninteractive", TERM: "dumb", MODE: "release" },
          },
        ],
        node_holes: [],
        edge_property: "directed",
        edges: [],
        timeout_seconds: 3600,
      },
    });
  },

  "defaults: name is the slug, manual runs allowed, no triggers, no timeout": () => {
    hm.__reset();
    const entry = renderEntry({ slug: "my-ci-pipeline", pipeline: oneStep() });
    assertEquals(
      { slug: entry.slug, name: entry.name, allow_manual: entry.allow_manual, triggers: entry.triggers },
      { slug: "my-ci-pipeline", name: "my-ci-pipeline", allow_manual: true, triggers: [] },
    );
    assert(!("timeout_seconds" in entry.definition));
  },

  "pipeline timeout forms": () => {
    for (const timeout of [3600, "60m", "1h", "3600"]) {
      hm.__reset();
      assertEquals(render(hm.pipeline(oneStep(), { timeout })).timeout_seconds, 3600, String(timeout));
    }
  },

  "pipeline() holds its steps, env and timeout": () => {
    const body = hm.pipeline([oneStep()], { env: { A: 1 }, timeout: 60 });
    assert(body instanceof hm.PipelineBody && Object.isFrozen(body));
    assertEquals(body.env, { A: "1" });
    assertEquals(body.timeoutSeconds, 60);
    const bare = hm.pipeline(oneStep());
    assertEquals(bare.env, {});
    assertEquals(bare.timeoutSeconds, null);
  },

  "the pipeline field: a body, bare steps, or a function returning either": () => {
    const forms = [
      () => oneStep(),
      () => [oneStep()],
      () => hm.pipeline(oneStep()),
      () => () => oneStep(),
      () => () => [[oneStep()]],
      () => () => hm.pipeline([oneStep()]),
    ];
    for (const form of forms) {
      hm.__reset();
      assertEquals(keys(render(form())), ["make"]);
    }
  },

  "a pipeline function runs when rendering": () => {
    hm.__reset();
    const calls: string[] = [];
    const definition = { slug: "ci", pipeline: () => (calls.push("ci"), oneStep()) };
    assertEquals(calls, []);
    renderFile(definition);
    assertEquals(calls, ["ci"]);
  },

  "an empty pipeline has no nodes": () => {
    hm.__reset();
    for (const empty of [null, [], [[]], () => null, hm.pipeline(undefined)]) {
      assertEquals(render(empty).nodes, []);
    }
  },

  "triggers": () => {
    const cases: Array<[hm.Trigger, unknown]> = [
      [hm.push({ branch: "main" }), { type: "push", branches: ["main"] }],
      [hm.push({ branch: ["main", "release/*"] }), { type: "push", branches: ["main", "release/*"] }],
      [hm.push({ tag: "v*" }), { type: "push", tags: ["v*"] }],
      [hm.push({ tag: ["v*", "nightly-*"] }), { type: "push", tags: ["v*", "nightly-*"] }],
      [hm.pullRequest(), { type: "pull_request", types: ["opened", "synchronize", "reopened"] }],
      [hm.pullRequest({ branches: "main" }), { type: "pull_request", branches: ["main"], types: ["opened", "synchronize", "reopened"] }],
      [hm.pr({ branches: ["main", "dev"], types: ["opened"] }), { type: "pull_request", branches: ["main", "dev"], types: ["opened"] }],
      [hm.pr({ types: "closed" }), { type: "pull_request", types: ["closed"] }],
    ];
    for (const [trigger, ir] of cases) {
      hm.__reset();
      assert(trigger instanceof hm.Trigger);
      assertEquals(renderEntry({ slug: "ci", triggers: [trigger], pipeline: oneStep() }).triggers, [ir]);
    }
    // Python's key order: type, branches, types.
    assertEquals(Object.keys(hm.pr({ branches: "main" }).ir), ["type", "branches", "types"]);
  },

  "pr is pullRequest": () => {
    assert(hm.pr === hm.pullRequest);
  },

  "a single step": () => {
    hm.__reset();
    assertEquals(keys(render(hm.sh("a", { key: "a" }))), ["a"]);
  },

  "nested arrays flatten in order": () => {
    hm.__reset();
    const steps = [hm.sh("a", { key: "a" }), [[hm.sh("b", { key: "b" }), [hm.sh("c", { key: "c" })]], hm.sh("d", { key: "d" })]];
    assertEquals(keys(render(steps)), ["a", "b", "c", "d"]);
  },

  "ancestors come before their steps, once": () => {
    hm.__reset();
    const root = hm.sh("root", { key: "root" });
    const definition = render([root.sh("a", { key: "a" }), root, root.sh("b", { key: "b" })]);
    assertEquals(keys(definition), ["root", "a", "b"]);
    assertEquals(parents(definition), { a: "root", b: "root" });
  },

  "a toolchain project contributes its defaults": () => {
    hm.__reset();
    const labels = render(hm.go.project()).nodes.map((n) => n.step.label);
    assertEquals(labels, ["apt base", "go 1.23.4", "go mod download", "gofmt", "go vet", "go build", "go test"]);
  },

  "a toolchain project in a list": () => {
    hm.__reset();
    const definition = render([hm.zig.project(), hm.wait(), hm.sh("deploy", { key: "deploy" })]);
    assertEquals(
      definition.nodes.slice(-4).map((n) => n.step.label ?? null),
      ["zig fmt", "zig build", "zig build test", null],
    );
  },
};
