import { pipeline } from "@harmont/hm";
import { js } from "@harmont/hm/toolchains";

const latest = js.project({ runtime: "deno" });
const pinned = js.project({ path: "api", runtime: "deno", version: "2.1.4", image: "debian:12" });

export default { slug: "js-deno", pipeline: pipeline([latest.run("test"), latest.run("lint"), pinned.run("check")]) };
