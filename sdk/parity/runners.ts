import { pipeline, scratch, sh } from "@harmont/hm";

const root = sh("make", { label: "root", runner: "vm", runnerArgs: { cpus: 2, tags: ["a", "b"] } });
const inDir = root.sh("make test", { label: "in dir", cwd: "sub dir", image: "ignored:1" });

export default {
  slug: "runners",
  pipeline: pipeline([
    inDir.sh("make more", { label: "more", runner: "vm" }),
    sh("make docs", { label: "docs", cwd: "docs", image: "alpine:3.20" }),
    scratch().sh("true", { label: "plain", key: "plain-key" }),
  ]),
};
