/** CI for this Python project: `hm run` runs it on your machine. */
import { pullRequest, push } from "@harmont/hm";
import { python } from "@harmont/hm/toolchains";

// A virtual environment with pytest, ruff and mypy; dependencies are cached on requirements.txt and pyproject.toml.
const project = python.project();

export default {
  slug: "ci",
  triggers: [push({ branch: "main" }), pullRequest()],
  pipeline: [project.lint(), project.fmt(), project.test()],
};
