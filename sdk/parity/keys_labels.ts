import { pipeline, sh } from "@harmont/hm";

const root = sh("make deps", { label: ":package: Install Deps!" });

export default {
  slug: "keys-labels",
  pipeline: pipeline([
    root.sh("make a", { label: "Build", key: "build" }),
    root.sh("make b", { label: "build" }),
    root.sh("make c", { label: "lint" }),
    root.sh("make d", { label: "LINT" }),
    root.sh("make e", { label: "构建" }),
    root.sh("make f", { label: ":rocket:" }),
    root.sh("make g"),
    root.sh("make g"),
    root.sh("make h", { label: "a:b:c -- Δ step 2" }),
    root.sh("make i", { key: "explicit" }),
    sh("make j", { label: "explicit" }),
    sh("make k", { label: "" }),
  ]),
};
