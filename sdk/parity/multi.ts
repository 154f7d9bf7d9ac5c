import { aptBase, forever, go, pipeline, push, python, sh, target, timeout, wait } from "@harmont/hm";
import type { PipelineDefinition } from "@harmont/hm";

const toolchain = target("multi_toolchain", () =>
  aptBase(["make", "gcc"]).sh("make bootstrap", { label: "bootstrap", cache: forever() }),
);

export default {
  slug: "multi-ci",
  triggers: [push({ branch: "main" })],
  pipeline: () => {
    const checks = toolchain().fork();
    return pipeline(
      [
        checks.sh("make lint", { label: ":mag: Lint" }),
        timeout("10m", checks.sh("make test", { label: "Test" })),
        wait({ continueOnFailure: true }),
        sh("notify", { label: "Test" }),
      ],
      { env: { CI: "1" }, timeout: "45m" },
    );
  },
} satisfies PipelineDefinition;

export const pipelines: PipelineDefinition[] = [
  { slug: "multi-presets", pipeline: () => [go.project(), python.project("py"), wait(), sh("echo done")] },
  {
    slug: "multi-nightly",
    name: "Nightly",
    triggers: [push({ tag: "v*" })],
    allowManual: false,
    pipeline: () => [toolchain().sh("make all"), toolchain().sh("make all"), wait(), wait(), toolchain()],
  },
  { slug: "multi-empty", pipeline: null },
];
