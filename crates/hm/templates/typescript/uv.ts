/** CI for this Python project (uv): `hm run` runs it on your machine. */
import { pipeline, pullRequest, push, type PipelineDefinition } from "@harmont/hm";
import { py } from "@harmont/hm/toolchains";

// uv on ubuntu:24.04; `uv sync` is cached on uv.lock and pyproject.toml.
const project = py.uv({ path: "." });

const pipelines: PipelineDefinition[] = [
  {
    slug: "ci",
    triggers: [push({ branch: "main" }), pullRequest()],
    pipeline: pipeline([project.test(), project.lint(), project.fmt()]),
  },
];

export default pipelines;
