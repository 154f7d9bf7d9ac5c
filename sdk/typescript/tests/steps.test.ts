/** Steps: sh, step.sh, scratch, fork, timeout, env layering, the default image and keys. */

import * as hm from "@harmont/hm";
import { assert, assertEquals, assertThrows } from "./assert.ts";
import { BASE_ENV, derivedKey, edges, keys, parents, render, renderFile, stepsByKey } from "./helpers.ts";

export const tests: Record<string, () => void> = {
  "labels slugify exactly as the Python SDK slugifies them": () => {
    hm.__reset();
    // Expected values are Python's `harmont._step.slugify` of each label.
    const cases: Array<[string, string]> = [
      ["Build & Test", "build-test"],
      [":rocket: Deploy :tada:", "deploy"],
      ["::x::", ""],
      ["a:b:c", "ac"],
      ["a::b", "a-b"],
      [":x", "x"],
      [" lead-trail ", "lead-trail"],
      ["ÄÖÜ äöü", ""],
      ["Ünïcödé 42", "n-c-d-42"],
      [":+1: ok", "ok"],
      ["--x--", "x"],
      ["a_b-c+d", "a-b-c-d"],
      ["Step 1/2: build", "step-1-2-build"],
      ["x:y_z:w", "xw"],
      ["İstanbul", "i-stanbul"],
    ];
    for (const [label, slug] of cases) {
      const key = keys(render(hm.sh("make", { label })))[0] as string;
      if (slug !== "") assertEquals(key, slug, `slug of ${JSON.stringify(label)}`);
      else assert(/^[0-9a-f]{12}$/.test(key), `${JSON.stringify(label)} has no slug: ${key}`);
    }
  },
  "sh makes a root with every option": () => {
    hm.__reset();
    const step = hm.sh("make", {
      cwd: "app",
      label: "Build",
      cache: hm.forever(),
      env: { CC: "clang" },
      image: "debian:12",
      key: "make",
      runner: "vm",
      runnerArgs: { cpus: 2 },
    });
    assertEquals(render(step), {
      version: "0",
      nodes: [
        {
          step: {
            key: "make",
            cmd: "cd app && make",
            label: "Build",
            image: "debian:12",
            env: { CC: "clang" },
            cache: { policy: "forever" },
            runner: "vm",
            runner_args: { cpus: 2 },
          },
          env: { ...BASE_ENV, CC: "clang" },
        },
      ],
      node_holes: [],
      edge_property: "directed",
      edges: [],
    });
  },

  "sh with only a command gets the default image and no cache": () => {
    hm.__reset();
    assertEquals(render(hm.sh("true")).nodes, [
      { step: { key: derivedKey("", "true", 0), cmd: "true", image: "ubuntu:24.04" }, env: BASE_ENV },
    ]);
    assertEquals(hm.DEFAULT_IMAGE, "ubuntu:24.04");
  },

  "step.sh builds in its parent with runner options": () => {
    hm.__reset();
    const root = hm.sh("apt-get update", { key: "root" });
    const child = root.sh("make", {
      cwd: "src",
      label: "Make",
      cache: hm.onChange("Makefile"),
      env: { J: "4" },
      key: "make",
      runner: "vm",
      runnerArgs: { cpus: 2 },
    });
    const definition = render(child);
    assertEquals(definition.nodes, [
      { step: { key: "root", cmd: "apt-get update", image: "ubuntu:24.04" }, env: BASE_ENV },
      {
        step: {
          key: "make",
          cmd: "cd src && make",
          label: "Make",
          env: { J: "4" },
          cache: { policy: "on_change", paths: ["Makefile"] },
          runner: "vm",
          runner_args: { cpus: 2 },
        },
        env: { ...BASE_ENV, J: "4" },
      },
    ]);
    assertEquals(definition.edges, [[0, 1, "builds_in"]]);
  },

  "a child's image is carried only when given": () => {
    hm.__reset();
    const root = hm.sh("root", { key: "root" });
    const steps = stepsByKey(render([root.sh("plain", { key: "plain" }), root.sh("other", { key: "other", image: "alpine:3" })]));
    assertEquals(steps.root?.image, "ubuntu:24.04");
    assert(!("image" in (steps.plain ?? {})), "a child has no image of its own");
    assertEquals(steps.other?.image, "alpine:3");
  },

  "steps are immutable and two sh calls branch": () => {
    hm.__reset();
    const root = hm.sh("setup", { key: "root" });
    const first = root.sh("a", { key: "a" });
    const second = root.sh("b", { key: "b" });
    assert(first !== root && second !== first);
    assert(root.cmd === "setup" && root.parent === null && first.parent === root);
    assertThrows(() => {
      (root as unknown as { cmd: string }).cmd = "other";
    }, "", TypeError);
    assert(root.cmd === "setup" && Object.isFrozen(root.fork()), "a step's fields have no setters; forks are frozen");
    const definition = render([first, second]);
    assertEquals(keys(definition), ["root", "a", "b"]);
    assertEquals(parents(definition), { a: "root", b: "root" });
  },

  "scratch gives its image to the first sh": () => {
    hm.__reset();
    const definition = render(hm.scratch({ image: "rust:1.83" }).sh("cargo build", { key: "build", label: "Build" }));
    assertEquals(definition.nodes, [
      { step: { key: "build", cmd: "cargo build", label: "Build", image: "rust:1.83" }, env: BASE_ENV },
    ]);
    assertEquals(definition.edges, []);
    assert(hm.scratch().isScratch && !hm.sh("x").isScratch);
  },

  "scratch's image can be overridden or defaulted": () => {
    hm.__reset();
    const steps = stepsByKey(
      render([hm.scratch({ image: "rust:1.83" }).sh("a", { key: "a", image: "alpine:3" }), hm.scratch().sh("b", { key: "b" })]),
    );
    assertEquals(steps.a?.image, "alpine:3");
    assertEquals(steps.b?.image, "ubuntu:24.04");
  },

  "a scratch root's runner options reach its first step": () => {
    hm.__reset();
    const step = hm.scratch().sh("uname", { key: "u", runner: "vm", runnerArgs: ["--fast", null, true] });
    assertEquals(render(step).nodes[0]?.step, {
      key: "u",
      cmd: "uname",
      image: "ubuntu:24.04",
      runner: "vm",
      runner_args: ["--fast", null, true],
    });
  },

  "scratch roots with one command get distinct keys": () => {
    hm.__reset();
    const root = hm.scratch({ image: "debian:12" });
    const definition = render([root.sh("make"), root.sh("make")]);
    assertEquals(keys(definition), [derivedKey("", "make", 0), derivedKey("", "make", 1)]);
    assertEquals(definition.edges, []);
  },

  "fork branches two children off one parent": () => {
    hm.__reset();
    const deps = hm.sh("fetch", { key: "deps" });
    const fork = deps.fork("checks");
    assert(fork instanceof hm.Fork && fork.step === deps && fork.label === "checks");
    const definition = render([fork.sh("lint", { key: "lint" }), fork.fork().sh("test", { key: "test" })]);
    assertEquals(keys(definition), ["deps", "lint", "test"]);
    assertEquals(definition.edges, [
      [0, 1, "builds_in"],
      [0, 2, "builds_in"],
    ]);
  },

  "a listed fork emits its step": () => {
    hm.__reset();
    assertEquals(keys(render(hm.sh("fetch", { key: "deps" }).fork())), ["deps"]);
  },

  "timeout sets timeout_seconds": () => {
    const cases: Array<[string | number, number]> = [
      ["30s", 30],
      ["5m", 300],
      ["1h30m", 5400],
      ["2d", 172800],
      ["90", 90],
      [" 1H 5M ", 3900],
      ["1d 2h 3m 4s", 93784],
      [45, 45],
      [2.5, 2],
      [3.5, 4],
      [0.4, 1],
    ];
    for (const [duration, expected] of cases) {
      hm.__reset();
      const definition = render(hm.timeout(duration, hm.sh("sleep 1", { key: "sleep" })));
      assertEquals(
        definition.nodes[0]?.step,
        { key: "sleep", cmd: "sleep 1", image: "ubuntu:24.04", timeout_seconds: expected },
        `timeout ${JSON.stringify(duration)}`,
      );
    }
  },

  "timeout returns a new step and applies to forks": () => {
    hm.__reset();
    const root = hm.sh("root", { key: "root" });
    const child = root.sh("child", { key: "child" });
    const wrapped = hm.timeout("1m", child.fork());
    assert(child.timeoutSeconds === null && wrapped.timeoutSeconds === 60 && wrapped.parent === root);
    const definition = render(wrapped);
    const steps = stepsByKey(definition);
    assertEquals(steps.child?.timeout_seconds, 60);
    assert(!("timeout_seconds" in (steps.root ?? {})));
    assertEquals(parents(definition), { child: "root" });
  },

  "env layers hm's, then the pipeline's, then the step's": () => {
    hm.__reset();
    const definition = render(
      hm.pipeline(
        [
          hm.sh("a", { key: "a", env: { B: "step", C: "step" } }),
          hm.sh("b", { key: "b", env: { TERM: "xterm" } }),
          hm.sh("c", { key: "c" }),
        ],
        { env: { A: "pipe", B: "pipe", DEBIAN_FRONTEND: "readline" } },
      ),
    );
    const byKey = Object.fromEntries(definition.nodes.map((n) => [n.step.key, n]));
    assertEquals(byKey.a?.env, { DEBIAN_FRONTEND: "readline", TERM: "dumb", A: "pipe", B: "step", C: "step" });
    assertEquals(byKey.a?.step.env, { B: "step", C: "step" });
    assertEquals(byKey.b?.env, { DEBIAN_FRONTEND: "readline", TERM: "xterm", A: "pipe", B: "pipe" });
    assertEquals(byKey.c?.env, { DEBIAN_FRONTEND: "readline", TERM: "dumb", A: "pipe", B: "pipe" });
    assert(!("env" in (byKey.c?.step ?? {})));
    // hm writes environments sorted by name.
    assertEquals(Object.keys(byKey.b?.env ?? {}), ["A", "B", "DEBIAN_FRONTEND", "TERM"]);
  },

  "env values become strings and an empty env is left out": () => {
    hm.__reset();
    const definition = render([hm.sh("a", { key: "a", env: { JOBS: 4, RATIO: 1.5 } }), hm.sh("b", { key: "b", env: {} })]);
    assertEquals(definition.nodes[0]?.step.env, { JOBS: "4", RATIO: "1.5" });
    assert(!("env" in (definition.nodes[1]?.step ?? {})));
  },

  "any env name is a variable, even __proto__": () => {
    hm.__reset();
    const env = JSON.parse('{"__proto__": "x", "A": "1"}') as Record<string, string>;
    const node = render(hm.sh("a", { key: "a", env })).nodes[0];
    assertEquals(Object.keys(node?.step.env ?? {}), ["A", "__proto__"]);
    assertEquals(Object.keys(node?.env ?? {}), ["A", "DEBIAN_FRONTEND", "TERM", "__proto__"]);
  },

  "cwd prefixes cd": () => {
    hm.__reset();
    const root = hm.sh("make", { cwd: "a b", key: "root" });
    assertEquals(keys(render(root)), ["root"]);
    assertEquals(root.cmd, "cd a b && make");
    assertEquals(root.sh("make test", { cwd: "./tests" }).cmd, "cd ./tests && make test");
  },

  "an explicit key wins over a label": () => {
    hm.__reset();
    assertEquals(keys(render(hm.sh("a", { key: "given", label: "Some Label" }))), ["given"]);
  },

  "a unique label is slugified": () => {
    const cases: Array<[string, string]> = [
      ["Build", "build"],
      ["Build :rocket: App!!", "build-app"],
      [":package: cargo   test --all", "cargo-test-all"],
      ["  Unit/Integration Tests  ", "unit-integration-tests"],
      ["v1.2 :white_check_mark:", "v1-2"],
      ["Déploiement 🚀 prod", "d-ploiement-prod"],
      [":+1: :smile_cat: ok", "ok"],
    ];
    for (const [label, key] of cases) {
      hm.__reset();
      assertEquals(keys(render(hm.sh("a", { label }))), [key], label);
    }
  },

  "a shared label falls back to hashes": () => {
    hm.__reset();
    const root = hm.sh("root", { label: "Same" });
    const rootKey = derivedKey("", "root", 0);
    assertEquals(keys(render([root.sh("a", { label: "Same" }), root.sh("b", { label: "same!" })])), [
      rootKey,
      derivedKey(rootKey, "a", 0),
      derivedKey(rootKey, "b", 0),
    ]);
  },

  "a label taken by an explicit key falls back to a hash": () => {
    hm.__reset();
    assertEquals(keys(render([hm.sh("a", { key: "build" }), hm.sh("b", { label: "Build" })])), [
      "build",
      derivedKey("", "b", 0),
    ]);
  },

  "a label of only shortcodes or empty falls back to a hash": () => {
    hm.__reset();
    const definition = render([hm.sh("a", { label: ":rocket:" }), hm.sh("b", { label: "" })]);
    assertEquals(keys(definition), [derivedKey("", "a", 0), derivedKey("", "b", 0)]);
    assertEquals(definition.nodes[0]?.step.label, ":rocket:");
    assert(!("label" in (definition.nodes[1]?.step ?? {})), "an empty label is left out");
  },

  "the hash covers parent key, command and position": () => {
    hm.__reset();
    const root = hm.sh("make", { key: "root" });
    const definition = render([root.sh("make"), root.sh("make"), hm.sh("make")]);
    assertEquals(keys(definition), [
      "root",
      derivedKey("root", "make", 0),
      derivedKey("root", "make", 1),
      derivedKey("", "make", 1),
    ]);
    for (const key of keys(definition).slice(1)) assert(/^[0-9a-f]{12}$/.test(key), key);
    // Pinned: the same text hashes to the same key in Python's SDK.
    assertEquals(derivedKey("", "true", 0), "d3987d95d24d");
  },

  "hashes are the same across renders": () => {
    const once = () => {
      hm.__reset();
      const root = hm.sh("apt-get update");
      return renderFile({ slug: "ci", pipeline: [root.sh("make"), root.sh("make test"), hm.sh("apt-get update")] });
    };
    assertEquals(once(), once());
  },

  "a hashed key's parent key is the parent's final key": () => {
    hm.__reset();
    const definition = render(hm.sh("root", { label: "Root Step" }).sh("child"));
    assertEquals(keys(definition), ["root-step", derivedKey("root-step", "child", 0)]);
    assertEquals(edges(definition, "builds_in"), [["root-step", derivedKey("root-step", "child", 0)]]);
  },
};
