/** CI for this Python project: `hm run` runs it on your machine. */
import { pipeline, pullRequest, push, type PipelineDefinition } from "@harmont/hm";
import { python } from "@harmont/hm/toolchains";

// uv on ubuntu:24.04; `uv sync` is cached on uv.lock and pyproject.toml.
const project = python({ path: "." });

const pipelines: PipelineDefinition[] = [
  {
    slug: "ci",
    triggers: [push({ branch: "main" }), pullRequest()],
    pipeline: pipeline([project.test(), project.lint(), project.fmt()]),
  },
];

export default pipelines;
