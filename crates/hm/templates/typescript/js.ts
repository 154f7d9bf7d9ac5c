/** CI for this JavaScript project: `hm run` runs it on your machine. */
import { pullRequest, push } from "@harmont/hm";
import { js } from "@harmont/hm/toolchains";

// Dependencies are installed from the lock file, and cached on it.
const project = js.project(".", { runtime: "{runtime}", packageManager: "{package_manager}" });

export default {
  slug: "ci",
  triggers: [push({ branch: "main" }), pullRequest()],
  pipeline: [project.run("lint"), project.run("test")],
};
