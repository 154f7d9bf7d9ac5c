import { js } from "@harmont/hm";

export default { slug: "js-deno", pipeline: js.project(".", { runtime: "deno" }) };

export const pipelines = [
  {
    slug: "js-deno-pinned",
    pipeline: () => {
      const project = js.project(".", { runtime: "deno", version: "2.1.4", image: "debian:12" });
      return [project.run("lint"), project.run("check")];
    },
  },
];
