import { pipeline } from "@harmont/hm";
import { js } from "@harmont/hm/toolchains";

const pnpm = js.project({ pm: "pnpm" });
const classic = js.project({ path: "classic", pm: "yarn-classic" });
const berry = js.project({ path: "berry", runtime: "node", pm: "yarn-berry", version: "22" });
const generated = pnpm.setup("pnpm run codegen", { label: "codegen" });

export default {
  slug: "js-node-pnpm",
  pipeline: pipeline([pnpm.run("lint"), pnpm.run("test"), classic.run("test"), berry.run("build"), generated.run("build")]),
};
