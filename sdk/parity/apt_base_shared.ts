import { aptBase, pipeline } from "@harmont/hm";
import { go, js, py, rust, zig } from "@harmont/hm/toolchains";

const shared = aptBase({
  packages: ["curl", "ca-certificates", "build-essential", "pkg-config", "libssl-dev", "python3", "python3-venv"],
});
const custom = aptBase({ packages: ["git"], image: "debian:12", label: ":lock: deps" });

export default [
  {
    slug: "apt-base-shared",
    pipeline: pipeline([rust.toolchain({ base: shared }).build(), py.uv({ path: "py", base: shared }).test()]),
  },
  {
    slug: "apt-base-custom",
    pipeline: pipeline([
      go({ base: custom }).build(),
      js.project({ path: "web", runtime: "node", base: custom }).run("test"),
      zig({ base: custom }).project("z").build(),
    ]),
  },
];
