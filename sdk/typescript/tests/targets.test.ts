/** target: values computed once per evaluation, shared by pipelines and other targets. */

import * as hm from "@harmont/hm";
import type { Step } from "@harmont/hm";
import { assert, assertEquals, assertThrows } from "./assert.ts";
import { BASE_ENV, nodesByKey, parents, render, renderFile } from "./helpers.ts";

export const tests: Record<string, () => void> = {
  "a target is computed once and shared by pipelines": () => {
    hm.__reset();
    const calls: string[] = [];
    const toolchain = hm.target("toolchain", () => {
      calls.push("toolchain");
      return hm.sh("install", { key: "install", cache: hm.forever() });
    });
    assertEquals(calls, [], "nothing runs before the target is asked for");
    const { envelope } = renderFile(
      { slug: "build", pipeline: () => toolchain().sh("make", { key: "make" }) },
      { slug: "test", pipeline: () => toolchain().sh("make test", { key: "test" }) },
    );
    assertEquals(calls, ["toolchain"]);
    const [first, second] = envelope.pipelines.map((p) => p.definition);
    const install = {
      step: { key: "install", cmd: "install", image: "ubuntu:24.04", cache: { policy: "forever" } },
      env: BASE_ENV,
    };
    assertEquals(first?.nodes[0], install);
    assertEquals(second?.nodes[0], install);
    assertEquals(parents(first!), { make: "install" });
    assertEquals(parents(second!), { test: "install" });
    assert(toolchain() === toolchain(), "the same value every time");
    assertEquals(calls, ["toolchain"]);
  },

  "targets depend on targets": () => {
    hm.__reset();
    const calls: string[] = [];
    const base = hm.target("base", () => {
      calls.push("base");
      return hm.sh("apt-get update", { key: "base" });
    });
    const tools = hm.target("tools", (): Step => {
      calls.push("tools");
      return base().sh("install tools", { key: "tools" });
    });
    const version = hm.target("version", () => "1.2.3");
    const definition = render(() => [tools().sh(`release ${version()}`, { key: "release" }), base().sh("lint", { key: "lint" })]);
    assertEquals(calls, ["tools", "base"]);
    assertEquals(parents(definition), { tools: "base", release: "tools", lint: "base" });
    assertEquals(nodesByKey(definition).release?.step.cmd, "release 1.2.3");
  },

  "a scratch root stands in for a base image": () => {
    hm.__reset();
    const toolchain = hm.target("toolchain", () =>
      hm.scratch({ image: "rust:1.83" }).sh("rustup component add clippy", { key: "clippy-install" }),
    );
    const definition = render(() => [
      hm.scratch({ image: "node:22" }).sh("npm ci", { key: "npm" }),
      toolchain().sh("cargo clippy", { key: "clippy" }),
    ]);
    const nodes = nodesByKey(definition);
    assertEquals(nodes.npm?.step, { key: "npm", cmd: "npm ci", image: "node:22" });
    assertEquals(nodes["clippy-install"]?.step.image, "rust:1.83");
    assert(!("image" in (nodes.clippy?.step ?? {})));
    assertEquals(parents(definition), { clippy: "clippy-install" });
  },

  "a target cycle names the cycle": () => {
    hm.__reset();
    const a: () => Step = hm.target("a", () => b());
    const b: () => Step = hm.target("b", () => a());
    const err = assertThrows(() => renderFile({ slug: "ci", pipeline: () => a() }), "target cycle: a -> b -> a");
    assertEquals(err.message, "target cycle: a -> b -> a");
  },

  "a cycle deeper in the chain names only the cycle": () => {
    hm.__reset();
    const top = hm.target("top", () => loopA());
    const loopA: () => Step = hm.target("loop-a", () => loopB());
    const loopB: () => Step = hm.target("loop-b", () => loopA());
    assertThrows(() => top(), "target cycle: loop-a -> loop-b -> loop-a");
    // A failed target is not remembered: it fails again the same way.
    assertThrows(() => top(), "target cycle: loop-a -> loop-b -> loop-a");
  },

  "a target that calls itself": () => {
    hm.__reset();
    const self: () => unknown = hm.target("self", () => self());
    assertThrows(() => self(), "target cycle: self -> self");
  },

  "duplicate target names": () => {
    hm.__reset();
    hm.target("tools", () => hm.sh("x"));
    assertThrows(() => hm.target("tools", () => hm.sh("y")), "duplicate target `tools`");
  },

  "a target's errors propagate unchanged": () => {
    hm.__reset();
    class Custom extends Error {}
    const broken = hm.target("broken", (): Step => {
      throw new Custom("no settings file");
    });
    const err = assertThrows(() => renderFile({ slug: "ci", pipeline: () => broken() }), "no settings file", Custom);
    assertEquals(err.message, "no settings file");
  },

  "reset forgets targets and their values": () => {
    hm.__reset();
    let calls = 0;
    const first = hm.target("t", () => ++calls);
    assertEquals(first(), 1);
    hm.__reset();
    const second = hm.target("t", () => ++calls);
    assertEquals(second(), 2);
    assertEquals(second(), 2);
  },
};
