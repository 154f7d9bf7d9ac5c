/**
 * The TypeScript halves of the parity pairs (`sdk/parity`): each defines
 * pipelines (the engine's test runner makes every one of their graphs both
 * in JavaScript and in Rust and requires the two to agree; hm's own test
 * suite compares them with the Python halves).
 */

import type { PipelineDefinition } from "@harmont/hm";
import { assert, assertEquals } from "./assert.ts";
import * as aptBaseShared from "../../parity/apt_base_shared.ts";
import * as cachePolicies from "../../parity/cache_policies.ts";
import * as cmakeAll from "../../parity/cmake_all.ts";
import * as elixirAll from "../../parity/elixir_all.ts";
import * as envLayering from "../../parity/env_layering.ts";
import * as forks from "../../parity/forks.ts";
import * as goPreset from "../../parity/go_preset.ts";
import * as jsDeno from "../../parity/js_deno.ts";
import * as jsNodeNpm from "../../parity/js_node_npm.ts";
import * as jsNodePnpm from "../../parity/js_node_pnpm.ts";
import * as keysLabels from "../../parity/keys_labels.ts";
import * as multi from "../../parity/multi.ts";
import * as pythonUv from "../../parity/python_uv.ts";
import * as runners from "../../parity/runners.ts";
import * as rustApp from "../../parity/rust_app.ts";
import * as rustDefault from "../../parity/rust_default.ts";
import * as targets from "../../parity/targets.ts";
import * as timeouts from "../../parity/timeouts.ts";
import * as triggers from "../../parity/triggers.ts";
import * as tsBun from "../../parity/ts_bun.ts";
import * as waits from "../../parity/waits.ts";
import * as zigPreset from "../../parity/zig_preset.ts";

const PAIRS: Record<string, Record<string, unknown>> = {
  apt_base_shared: aptBaseShared,
  cache_policies: cachePolicies,
  cmake_all: cmakeAll,
  elixir_all: elixirAll,
  env_layering: envLayering,
  forks: forks,
  go_preset: goPreset,
  js_deno: jsDeno,
  js_node_npm: jsNodeNpm,
  js_node_pnpm: jsNodePnpm,
  keys_labels: keysLabels,
  multi: multi,
  python_uv: pythonUv,
  runners: runners,
  rust_app: rustApp,
  rust_default: rustDefault,
  targets: targets,
  timeouts: timeouts,
  triggers: triggers,
  ts_bun: tsBun,
  waits: waits,
  zig_preset: zigPreset,
};

function definitions(module: Record<string, unknown>): PipelineDefinition[] {
  const exported = (module.default ?? module.pipelines) as PipelineDefinition | PipelineDefinition[];
  return Array.isArray(exported) ? exported : [exported];
}

export const tests: Record<string, () => void> = {
  "every pair defines pipelines with slugs of their own"() {
    const slugs = Object.values(PAIRS).flatMap((module) => definitions(module).map((d) => d.slug));
    assert(slugs.length >= Object.keys(PAIRS).length);
    assertEquals(new Set(slugs).size, slugs.length);
  },

  "every pair's graphs read in JavaScript"() {
    for (const [name, module] of Object.entries(PAIRS)) {
      for (const definition of definitions(module)) {
        assertEquals(definition.pipeline.version, "0", name);
        assert(Array.isArray(definition.pipeline.graph.nodes), name);
      }
    }
  },
};
