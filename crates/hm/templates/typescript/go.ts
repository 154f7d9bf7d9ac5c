/** CI for this Go module: `hm run` runs it on your machine. */
import { pullRequest, push } from "@harmont/hm";
import { go } from "@harmont/hm/toolchains";

// The official Go release; `go mod download` is cached on go.sum.
const project = go.project();

export default {
  slug: "ci",
  triggers: [push({ branch: "main" }), pullRequest()],
  pipeline: [project.fmt(), project.vet(), project.build(), project.test()],
};
