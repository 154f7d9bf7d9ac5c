import { pipeline } from "@harmont/hm";
import { elixir } from "@harmont/hm/toolchains";

const project = elixir({ path: "." });
const umbrella = elixir({ path: "apps/api", elixirVersion: "1.17.3", otpVersion: "26", image: "debian:12" });
const seeded = umbrella.setup("mix run priv/seeds.exs", { label: "seed" });

export default [
  {
    slug: "elixir-all",
    pipeline: pipeline(
      [
        project.compile(),
        project.test({ cover: true, partitions: 4 }),
        project.format(),
        project.credo(),
        project.credo({ strict: false, key: "credo-lax" }),
        project.dialyzer(),
        project.sobelow(),
        project.depsAudit(),
        project.hexAudit(),
        project.mix("assets.deploy"),
        project.release({ mixEnv: "staging" }),
      ],
      { env: { MIX_ENV: "test" } },
    ),
  },
  {
    slug: "elixir-versions",
    pipeline: pipeline([umbrella.test({ env: { MIX_ENV: "ci" } }), seeded.compile({ label: "compile after seeding" })]),
  },
];
