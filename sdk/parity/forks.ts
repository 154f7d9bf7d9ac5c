import { pipeline, scratch, sh } from "@harmont/hm";

const base = sh("make deps", { label: "deps" });
const branch = base.fork({ label: "checks" });
const inner = branch.fork();

export default {
  slug: "forks",
  pipeline: pipeline([
    branch.sh("make lint", { label: "lint" }),
    branch.sh("make test"),
    inner.sh("make test"),
    inner,
    base.fork({ label: "unused" }),
    scratch(),
  ]),
};
