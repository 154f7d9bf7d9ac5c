import { js } from "@harmont/hm/toolchains";

export default [
  { slug: "js-node-npm", pipeline: js.project() },
  {
    slug: "js-node-yarn",
    pipeline: () => {
      const project = js.project("web", { version: "20", packageManager: "yarn" });
      return [project.install(), project.run("build"), project.run("test")];
    },
  },
];
