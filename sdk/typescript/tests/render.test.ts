/** __render: the envelope of every file's exports, sources, and what a malformed definition says. */

import * as hm from "@harmont/hm";
import { assert, assertEquals, assertThrows } from "./assert.ts";
import type { Rendered } from "./helpers.ts";

const oneStep = (key = "make") => hm.sh(key, { key });

function renderFiles(files: Array<{ file: string; exports: Record<string, unknown> }>): Rendered {
  return JSON.parse(hm.__render(files)) as Rendered;
}

function slugsOf(rendered: Rendered): string[] {
  return rendered.envelope.pipelines.map((p) => p.slug);
}

export const tests: Record<string, () => void> = {
  "the reply is one JSON object, written as hm writes IR": () => {
    hm.__reset();
    const text = hm.__render([
      { file: ".hm/pipeline.ts", exports: { default: { slug: "ci", triggers: [hm.push({ branch: "main" })], pipeline: oneStep() } } },
    ]);
    assertEquals(
      text,
      '{"envelope":{"schema_version":"1","pipelines":[{"slug":"ci","name":"ci","allow_manual":true,' +
        '"triggers":[{"branches":["main"],"type":"push"}],"definition":{"version":"0","nodes":[{"step":' +
        '{"key":"make","cmd":"make","image":"ubuntu:24.04"},"env":{"DEBIAN_FRONTEND":"noninteractive","TERM":"dumb"}}],' +
        '"node_holes":[],"edge_property":"directed","edges":[]}}]},"sources":[".hm/pipeline.ts"]}',
    );
  },

  "a step's fields come in Python's order, environments sorted by name": () => {
    hm.__reset();
    const text = hm.__render([
      {
        file: ".hm/a.ts",
        exports: {
          default: {
            slug: "ci",
            pipeline: [
              hm.wait({ continueOnFailure: true }),
              hm.timeout(
                5,
                hm.scratch().sh("x", {
                  runnerArgs: 1,
                  runner: "vm",
                  cache: hm.forever(),
                  env: { A: "1" },
                  image: "i",
                  label: "L",
                  key: "k",
                }),
              ),
            ],
          },
        },
      },
    ]);
    assert(
      text.includes(
        '{"step":{"key":"k","cmd":"x","label":"L","image":"i","env":{"A":"1"},"cache":{"policy":"forever"},' +
          '"timeout_seconds":5,"runner":"vm","runner_args":1,"continue_on_failure":true},' +
          '"env":{"A":"1","DEBIAN_FRONTEND":"noninteractive","TERM":"dumb"}}',
      ),
      text,
    );
  },

  "files in order, default before pipelines, one or many each": () => {
    hm.__reset();
    const rendered = renderFiles([
      { file: ".hm/a.ts", exports: { pipelines: [{ slug: "a2", pipeline: oneStep() }], default: { slug: "a1", pipeline: oneStep() } } },
      { file: ".hm/b.ts", exports: { helper: 1 } },
      { file: ".hm/c.ts", exports: { default: [{ slug: "c1", pipeline: oneStep() }, { slug: "c2", pipeline: oneStep() }] } },
      { file: ".hm/d.ts", exports: { pipelines: { slug: "d1", pipeline: oneStep() } } },
      { file: ".hm/e.ts", exports: { default: [], pipelines: [] } },
    ]);
    assertEquals(slugsOf(rendered), ["a1", "a2", "c1", "c2", "d1"]);
    assertEquals(rendered.sources, [".hm/a.ts", ".hm/a.ts", ".hm/c.ts", ".hm/c.ts", ".hm/d.ts"]);
    assertEquals(rendered.envelope.schema_version, "1");
  },

  "no files, no pipelines": () => {
    hm.__reset();
    assertEquals(renderFiles([]), { envelope: { schema_version: "1", pipelines: [] }, sources: [] });
  },

  "steps shared between pipelines render in each": () => {
    hm.__reset();
    const shared = hm.sh("install", { key: "install" });
    const rendered = renderFiles([
      { file: ".hm/a.ts", exports: { default: [{ slug: "one", pipeline: shared.sh("a", { key: "a" }) }, { slug: "two", pipeline: [shared] }] } },
    ]);
    assertEquals(
      rendered.envelope.pipelines.map((p) => p.definition.nodes.map((n) => n.step.key)),
      [["install", "a"], ["install"]],
    );
  },

  "a definition that is not an object names its file": () => {
    for (const bad of [42, "ci", null, true, [[{ slug: "ci", pipeline: [] }]], () => ({ slug: "ci", pipeline: [] })]) {
      hm.__reset();
      assertThrows(
        () => hm.__render([{ file: ".hm/bad.ts", exports: { default: bad } }]),
        "`.hm/bad.ts`: a pipeline definition is an object {slug, pipeline, name?, allowManual?, triggers?}",
      );
    }
  },

  "a step, a pipeline body or a wait exported bare is not a definition": () => {
    for (const bad of [oneStep(), hm.pipeline(oneStep()), hm.wait(), oneStep().fork()]) {
      hm.__reset();
      assertThrows(
        () => hm.__render([{ file: ".hm/bad.ts", exports: { pipelines: [bad] } }]),
        "`.hm/bad.ts`: a pipeline definition is an object",
      );
    }
  },

  "a definition without a slug": () => {
    hm.__reset();
    assertThrows(
      () => hm.__render([{ file: ".hm/x.ts", exports: { default: { pipeline: oneStep() } } }]),
      "`.hm/x.ts`: a pipeline's slug must be a string, not undefined",
    );
    assertThrows(
      () => hm.__render([{ file: ".hm/x.ts", exports: { default: { slug: 7, pipeline: oneStep() } } }]),
      "`.hm/x.ts`: a pipeline's slug must be a string, not 7",
    );
  },

  "bad slugs": () => {
    for (const slug of ["Bad_Slug", "1abc", "a".repeat(65), "", "-lead", "has space", "ünï", "ci\n", "ci-"  + "x".repeat(63)]) {
      hm.__reset();
      assertThrows(
        () => hm.__render([{ file: ".hm/x.ts", exports: { default: { slug, pipeline: oneStep() } } }]),
        `\`.hm/x.ts\`: invalid pipeline slug \`${slug}\`: it must match ^[a-z][a-z0-9-]{0,63}$`,
      );
    }
  },

  "good slugs": () => {
    for (const slug of ["a", "a".repeat(64), "build-2", "x-"]) {
      hm.__reset();
      assertEquals(slugsOf(renderFiles([{ file: ".hm/x.ts", exports: { default: { slug, pipeline: oneStep() } } }])), [slug]);
    }
  },

  "a duplicate slug across files names both files": () => {
    hm.__reset();
    const err = assertThrows(
      () =>
        hm.__render([
          { file: ".hm/a.ts", exports: { default: { slug: "ci", pipeline: oneStep() } } },
          { file: ".hm/b.ts", exports: { pipelines: [{ slug: "lint", pipeline: oneStep() }, { slug: "ci", pipeline: oneStep() }] } },
        ]),
      "duplicate pipeline slug `ci`",
    );
    assertEquals(err.message, "`.hm/b.ts`: duplicate pipeline slug `ci` (also defined in .hm/a.ts)");
  },

  "a duplicate slug in one file": () => {
    hm.__reset();
    assertThrows(
      () => hm.__render([{ file: ".hm/a.ts", exports: { default: { slug: "ci", pipeline: [] }, pipelines: { slug: "ci", pipeline: [] } } }]),
      "`.hm/a.ts`: duplicate pipeline slug `ci` (also defined in .hm/a.ts)",
    );
  },

  "definitions are checked before any pipeline renders": () => {
    hm.__reset();
    let rendered = false;
    assertThrows(
      () =>
        hm.__render([
          { file: ".hm/a.ts", exports: { default: { slug: "ci", pipeline: () => ((rendered = true), oneStep()) } } },
          { file: ".hm/b.ts", exports: { default: { slug: "Bad" , pipeline: [] } } },
        ]),
      "`.hm/b.ts`: invalid pipeline slug `Bad`",
    );
    assert(!rendered, "no pipeline function ran");
  },

  "unknown fields, a missing pipeline, a bad name and bad triggers name the file": () => {
    const cases: Array<[Record<string, unknown>, string]> = [
      [{ slug: "ci", pipeline: [], allow_manual: false }, "a pipeline definition has no field `allow_manual` (fields: slug, name, allowManual, triggers, pipeline)"],
      [{ slug: "ci", steps: [] }, "a pipeline definition has no field `steps`"],
      [{ slug: "ci" }, "pipeline `ci` has no `pipeline` (its steps)"],
      [{ slug: "ci", name: 3, pipeline: [] }, "pipeline `ci`: name must be a string, not 3"],
      [{ slug: "ci", triggers: hm.push({ branch: "main" }), pipeline: [] }, "pipeline `ci`: triggers must be an array"],
      [{ slug: "ci", triggers: [{ type: "push" }], pipeline: [] }, "triggers must be push(...) or pullRequest(...), not {\"type\":\"push\"}"],
    ];
    for (const [definition, message] of cases) {
      hm.__reset();
      assertThrows(() => hm.__render([{ file: ".hm/x.ts", exports: { default: definition } }]), `\`.hm/x.ts\`: ${message}`);
    }
  },

  "a null name means the slug": () => {
    hm.__reset();
    const rendered = renderFiles([{ file: ".hm/x.ts", exports: { default: { slug: "ci", name: null, pipeline: [] } } }]);
    assertEquals(rendered.envelope.pipelines[0]?.name, "ci");
  },

  "allowManual is read as a boolean": () => {
    hm.__reset();
    const rendered = renderFiles([
      {
        file: ".hm/x.ts",
        exports: {
          pipelines: [
            { slug: "a", allowManual: false, pipeline: [] },
            { slug: "b", allowManual: true, pipeline: [] },
            { slug: "c", pipeline: [] },
          ],
        },
      },
    ]);
    assertEquals(rendered.envelope.pipelines.map((p) => p.allow_manual), [false, true, true]);
  },

  "errors thrown while rendering propagate unchanged, marked with the file": () => {
    hm.__reset();
    const thrown = new TypeError("steps is undefined");
    let caught: unknown;
    try {
      hm.__render([
        { file: ".hm/a.ts", exports: { default: { slug: "a", pipeline: [] } } },
        {
          file: ".hm/b.ts",
          exports: {
            default: {
              slug: "b",
              pipeline: () => {
                throw thrown;
              },
            },
          },
        },
      ]);
    } catch (err) {
      caught = err;
    }
    assert(caught === thrown, "the very error");
    assertEquals((caught as Error).message, "steps is undefined");
    assertEquals((caught as { hmFile?: string }).hmFile, ".hm/b.ts");
    assert(!Object.keys(caught as object).includes("hmFile"), "hmFile is not enumerable");
  },

  "a HarmontError while rendering is not prefixed": () => {
    hm.__reset();
    const err = assertThrows(
      () => hm.__render([{ file: ".hm/a.ts", exports: { default: { slug: "ci", pipeline: [hm.sh("a", { key: "k" }), hm.sh("b", { key: "k" })] } } }]),
      "pipeline `ci`: two steps have the key `k`",
    );
    assertEquals(err.message, "pipeline `ci`: two steps have the key `k`; give one of them another key");
    assertEquals((err as { hmFile?: string }).hmFile, ".hm/a.ts");
  },
};
