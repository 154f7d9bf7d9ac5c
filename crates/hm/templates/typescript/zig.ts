/** CI for this Zig project: `hm run` runs it on your machine. */
import { pullRequest, push } from "@harmont/hm";
import { zig } from "@harmont/hm/toolchains";

// The official Zig release for the machine's architecture.
const project = zig.project();

export default {
  slug: "ci",
  triggers: [push({ branch: "main" }), pullRequest()],
  pipeline: [project.fmt(), project.build(), project.test()],
};
