/** CI for this Go module: `hm run` runs it on your machine. */
import { pipeline, pullRequest, push, type PipelineDefinition } from "@harmont/hm";
import { go } from "@harmont/hm/toolchains";

// The official Go release on ubuntu:24.04, installed once and cached.
const project = go({ path: "." });

const pipelines: PipelineDefinition[] = [
  {
    slug: "ci",
    triggers: [push({ branch: "main" }), pullRequest()],
    pipeline: pipeline([project.build(), project.test(), project.vet(), project.fmt()]),
  },
];

export default pipelines;
