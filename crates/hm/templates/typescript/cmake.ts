/** CI for this CMake project: `hm run` runs it on your machine. */
import { pipeline, pullRequest, push, type PipelineDefinition } from "@harmont/hm";
import { cmake } from "@harmont/hm/toolchains";

// CMake, Ninja, ccache and clang tools from apt; configure and build are cached on CMakeLists.txt.
const project = cmake({ path: "." });

const pipelines: PipelineDefinition[] = [
  {
    slug: "ci",
    triggers: [push({ branch: "main" }), pullRequest()],
    pipeline: pipeline([project.build(), project.test(), project.fmt()]),
  },
];

export default pipelines;
