/** wait: depends_on edges between the steps before and after a wait. */

import * as hm from "@harmont/hm";
import { assert, assertEquals } from "./assert.ts";
import { edges, keys, render, stepsByKey } from "./helpers.ts";

export const tests: Record<string, () => void> = {
  "wait joins everything emitted before to everything after": () => {
    hm.__reset();
    const base = hm.sh("base", { key: "base" });
    const a = base.sh("a", { key: "a" });
    const b = hm.sh("b", { key: "b" });
    // `c` builds in `a`, already emitted; `d` brings its unemitted parent `d0` along.
    const c = a.sh("c", { key: "c" });
    const d = hm.sh("d0", { key: "d0" }).sh("d", { key: "d" });
    const definition = render([a, b, hm.wait(), c, d]);
    assertEquals(keys(definition), ["base", "a", "b", "c", "d0", "d"]);
    assertEquals(definition.edges, [
      [0, 1, "builds_in"],
      [1, 3, "builds_in"],
      [4, 5, "builds_in"],
      [0, 3, "depends_on"],
      [1, 3, "depends_on"],
      [2, 3, "depends_on"],
      [0, 4, "depends_on"],
      [1, 4, "depends_on"],
      [2, 4, "depends_on"],
      [0, 5, "depends_on"],
      [1, 5, "depends_on"],
      [2, 5, "depends_on"],
    ]);
  },

  "each wait joins only to the previous wait": () => {
    hm.__reset();
    const definition = render([hm.sh("x", { key: "x" }), hm.wait(), hm.sh("y", { key: "y" }), hm.wait(), hm.sh("z", { key: "z" })]);
    assertEquals(edges(definition, "depends_on"), [
      ["x", "y"],
      ["y", "z"],
    ]);
  },

  "two waits in a row still join": () => {
    hm.__reset();
    const definition = render([hm.sh("x", { key: "x" }), hm.wait(), hm.wait(), hm.sh("z", { key: "z" })]);
    assertEquals(edges(definition, "depends_on"), [["x", "z"]]);
  },

  "waits at the edges add nothing": () => {
    hm.__reset();
    const definition = render([hm.wait(), hm.sh("x", { key: "x" }), hm.sh("y", { key: "y" }), hm.wait()]);
    assertEquals(keys(definition), ["x", "y"]);
    assertEquals(definition.edges, []);
  },

  "waits inside nested arrays": () => {
    hm.__reset();
    const definition = render([[hm.sh("x", { key: "x" }), [hm.wait()]], [hm.sh("y", { key: "y" })]]);
    assertEquals(edges(definition, "depends_on"), [["x", "y"]]);
  },

  "continueOnFailure marks the later steps": () => {
    hm.__reset();
    const later = hm.sh("notify-root", { key: "notify-root" }).sh("notify", { key: "notify" });
    const definition = render([
      hm.sh("test", { key: "test" }),
      hm.wait({ continueOnFailure: true }),
      later,
      hm.wait(),
      hm.sh("end", { key: "end" }),
    ]);
    const steps = stepsByKey(definition);
    assertEquals(steps.notify, { key: "notify", cmd: "notify", continue_on_failure: true });
    assertEquals(steps["notify-root"], { key: "notify-root", cmd: "notify-root", image: "ubuntu:24.04", continue_on_failure: true });
    assert(!("continue_on_failure" in (steps.test ?? {})));
    assert(!("continue_on_failure" in (steps.end ?? {})));
    assertEquals(edges(definition, "depends_on"), [
      ["test", "notify-root"],
      ["test", "notify"],
      ["notify-root", "end"],
      ["notify", "end"],
    ]);
  },

  "a lenient wait before an empty group marks nothing": () => {
    hm.__reset();
    const definition = render([hm.sh("a", { key: "a" }), hm.wait({ continueOnFailure: true }), hm.wait(), hm.sh("b", { key: "b" })]);
    assert(!definition.nodes.some((n) => "continue_on_failure" in n.step));
    assertEquals(edges(definition, "depends_on"), [["a", "b"]]);
  },

  "wait defaults to stopping on failure": () => {
    assert(hm.wait() instanceof hm.Wait);
    assertEquals(hm.wait().continueOnFailure, false);
    assertEquals(hm.wait({ continueOnFailure: true }).continueOnFailure, true);
    assertEquals(hm.wait({}).continueOnFailure, false);
  },
};
