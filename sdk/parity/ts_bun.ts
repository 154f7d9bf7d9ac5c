import { pipeline } from "@harmont/hm";
import { js, ts } from "@harmont/hm/toolchains";

const bun = ts.project({ runtime: "bun" });
const pinned = ts.project({ path: "pinned", runtime: "bun", version: "1.1.38" });
const onNode = js.project({ path: "hybrid", runtime: "node", pm: "bun" });

export default {
  slug: "ts-bun",
  pipeline: pipeline([bun.run("build"), bun.run("test"), pinned.run("test"), onNode.run("test")]),
};
