import { pipeline, sh } from "@harmont/hm";
import { elixir } from "@harmont/hm/toolchains";

const root = sh("make", { label: "root", env: { STAGE: "step", ONLY_ROOT: "1" } });
const child = root.sh("make check", { label: "child" });
const ex = elixir({ path: "ex" });

export default [
  {
    slug: "env-layering",
    pipeline: pipeline([child, ex.compile({ env: { MIX_ENV: "prod" } }), ex.test()], {
      env: { CI: "true", STAGE: "pipeline", TERM: "xterm" },
    }),
  },
  { slug: "env-plain", pipeline: pipeline([sh("env", { label: "env", env: { DEBIAN_FRONTEND: "readline" } })]) },
];
