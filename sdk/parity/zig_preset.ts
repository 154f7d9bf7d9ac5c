import { pipeline } from "@harmont/hm";
import { zig } from "@harmont/hm/toolchains";

const project = zig({ path: "." });
const old = zig({ path: "legacy", version: "0.13.0" });
const toolchain = zig({ version: "0.15.1", image: "debian:12" }).setup("zig version > /tmp/v", { label: "record" });
const a = toolchain.project("lib-a");
const b = toolchain.project("lib-b").setup("zig build gen");

export default {
  slug: "zig-preset",
  pipeline: pipeline([project.build(), project.test(), project.fmt(), old.build(), a.build(), a.test(), b.test()]),
};
