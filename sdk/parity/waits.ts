import { pipeline, sh, wait } from "@harmont/hm";

const build = sh("make", { label: "build" });

export default {
  slug: "waits",
  pipeline: pipeline([
    wait(),
    build,
    sh("make lint", { label: "lint" }),
    wait(),
    [build.sh("make test", { label: "test" }), [build.sh("make bench", { label: "bench" })]],
    wait({ continueOnFailure: true }),
    sh("make report", { label: "report" }),
    wait(),
    wait(),
    sh("make notify", { label: "notify" }),
    wait(),
  ] as never),
};
