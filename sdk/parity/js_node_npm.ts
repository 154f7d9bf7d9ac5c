import { pipeline } from "@harmont/hm";
import { js } from "@harmont/hm/toolchains";

const web = js.project({ path: "web", runtime: "node", pm: "npm" });
const legacy = js.project({ path: "legacy", runtime: "node", version: "20.x", image: "debian:12" });

export default [
  {
    slug: "js-node-npm",
    pipeline: pipeline([web.install(), web.run("build"), web.run("test", { label: "unit" }), legacy.run("lint")], {
      env: { CI: "true" },
    }),
  },
  // Nothing to read in the project: node and npm.
  { slug: "js-detected", pipeline: pipeline([js.project().run("test")]) },
];
