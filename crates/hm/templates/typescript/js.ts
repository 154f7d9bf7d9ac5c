/** CI for this JavaScript project: `hm run` runs it on your machine. */
import { pipeline, pullRequest, push, type PipelineDefinition } from "@harmont/hm";
import { js } from "@harmont/hm/toolchains";

// The runtime and package manager come from package.json and the lock file; dependencies are cached on the lock file.
const project = js.project({ path: "." });

const pipelines: PipelineDefinition[] = [
  {
    slug: "ci",
    triggers: [push({ branch: "main" }), pullRequest()],
    pipeline: pipeline([project.run("lint"), project.run("test")]),
  },
];

export default pipelines;
