/** CI for this Zig project: `hm run` runs it on your machine. */
import { pipeline, pullRequest, push, type PipelineDefinition } from "@harmont/hm";
import { zig } from "@harmont/hm/toolchains";

// The official Zig release on ubuntu:24.04, installed once and cached.
const project = zig({ path: "." });

const pipelines: PipelineDefinition[] = [
  {
    slug: "ci",
    triggers: [push({ branch: "main" }), pullRequest()],
    pipeline: pipeline([project.build(), project.test(), project.fmt()]),
  },
];

export default pipelines;
