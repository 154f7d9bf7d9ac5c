/** CI for this Python project (uv): `hm run` runs it on your machine. */
import { pullRequest, push } from "@harmont/hm";
import { py } from "@harmont/hm/toolchains";

// Python installed by uv; `uv sync` is cached on uv.lock.
const project = py.uv.project(".", { python: "3.12" });

export default {
  slug: "ci",
  triggers: [push({ branch: "main" }), pullRequest()],
  pipeline: [project.lint(), project.fmt(), project.test()],
};
