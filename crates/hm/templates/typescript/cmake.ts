/** CI for this CMake project: `hm run` runs it on your machine. */
import { pullRequest, push } from "@harmont/hm";
import { cmake } from "@harmont/hm/toolchains";

// CMake, Ninja and clang tools from the image; configuring is cached on the CMake files.
const project = cmake.project();

export default {
  slug: "ci",
  triggers: [push({ branch: "main" }), pullRequest()],
  pipeline: [project.fmt(), project.build(), project.test()],
};
