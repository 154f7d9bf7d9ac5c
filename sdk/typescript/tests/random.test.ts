/**
 * Pipelines of random shape (a seeded generator: roots, children, forks,
 * waits, timeouts, every option, presets), so that the engine's test
 * runner compares many graphs made in JavaScript and in Rust.
 */

import { compose, forever, onChange, pipeline, scratch, sh, timeout, ttl, wait } from "@harmont/hm";
import type { PipelineIR, Step, StepOptions } from "@harmont/hm";
import { cmake, elixir, go, js, py, python, rust, zig } from "@harmont/hm/toolchains";
import { assert } from "./assert.ts";

/** A linear congruential generator: the same pipelines on every run. */
function random(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return state / 2 ** 32;
  };
}

function make(seed: number): PipelineIR {
  const r = random(seed);
  const pick = <T>(items: readonly T[]): T => items[Math.floor(r() * items.length)] as T;
  const options = (): StepOptions => {
    const o: Record<string, unknown> = {};
    const label = pick([undefined, "build", "Build!", ":rust: test", "构建", "", "lint", "a:b:c"]);
    if (label !== undefined) o.label = label;
    const key = pick([undefined, undefined, undefined, "k1", "build"]);
    if (key !== undefined) o.key = key;
    if (r() < 0.2) o.cwd = pick(["a", "b c"]);
    if (r() < 0.2) o.image = pick(["alpine", "debian:12"]);
    if (r() < 0.3) {
      o.cache = pick([forever(), forever({ envKeys: ["A"] }), ttl(3600), onChange("x", "**/*.rs"), compose(ttl(60), onChange("y"))]);
    }
    if (r() < 0.3) o.env = { E: String(Math.floor(r() * 3)), TERM: "x" };
    if (r() < 0.1) o.runner = "vm";
    if (r() < 0.1) o.runnerArgs = { n: 1, list: [1, "a"] };
    return o as StepOptions;
  };
  const steps: Step[] = [];
  const leaves: Step[] = [];
  const count = 3 + Math.floor(r() * 15);
  for (let i = 0; i < count; i++) {
    const choice = r();
    let step: Step;
    if (choice < 0.25 || steps.length === 0) step = sh(pick(["make", "make test", "echo"]), options());
    else if (choice < 0.35) step = scratch(r() < 0.5 ? { image: "img" } : undefined).sh(pick(["make", "x"]), options());
    else if (choice < 0.45) step = pick(steps).fork(r() < 0.5 ? { label: "f" } : undefined);
    else if (choice < 0.55) {
      const on = pick(steps);
      step = on._cmd !== null && !on._isWait ? timeout(pick(["30s", 5, "1h2m"]), on) : on.sh("t");
    } else if (choice < 0.62) step = wait({ continueOnFailure: r() < 0.5 });
    else step = pick(steps).sh(pick(["make", "make test", "echo", "x"]), options());
    steps.push(step);
    if (r() < 0.5) leaves.push(step);
  }
  const preset = r();
  if (preset < 0.15) {
    const project = rust.project({ path: pick([".", "cli"]) });
    leaves.push(...project.ci({ nextest: r() < 0.5, doc: r() < 0.5 }), project.featurePowerset({ skip: ["a b"] }));
  } else if (preset < 0.3) {
    const toolchain = go({ path: pick([".", "svc"]) });
    leaves.push(toolchain.build(), toolchain.setup("gen").vet());
  } else if (preset < 0.45) {
    const project = js.project(pick([{ runtime: "bun" as const }, { runtime: "deno" as const }, { pm: "pnpm" as const }]));
    leaves.push(project.run("build"), project.install());
  } else if (preset < 0.6) {
    const project = cmake({ path: pick([".", "x"]), compiler: pick([undefined, "gcc-14"]) });
    leaves.push(project.test(), project.fmt(), project.package({ generator: "DEB" }));
  } else if (preset < 0.75) {
    const project = elixir({ path: pick([".", "app"]) });
    leaves.push(project.compile(), project.dialyzer(), project.release());
  } else if (preset < 0.85) {
    const toolchain = zig();
    leaves.push(toolchain.project("a").build(), toolchain.project("b").test());
  } else {
    leaves.push(py.uv({ path: "p" }).run("flask x"), python().setup("s").test());
  }
  const opts: Record<string, unknown> = r() < 0.5 ? { env: { P: "1" } } : {};
  if (r() < 0.3) opts.timeout = "1h";
  if (r() < 0.2) opts.defaultImage = "debian:12";
  return pipeline(leaves.length > 0 ? leaves : [steps[0] as Step], opts);
}

export const tests: Record<string, () => void> = {
  "400 pipelines of random shape"() {
    for (let seed = 1; seed <= 400; seed++) {
      assert(make(seed).version === "0");
    }
  },
};
