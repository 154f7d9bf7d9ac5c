import { js } from "@harmont/hm";

const project = js.project(".", { packageManager: "pnpm" });

export default {
  slug: "js-node-pnpm",
  pipeline: [project.install(), project.run("lint"), project.run("test")],
};
