import { forever, pipeline, sh, target, ttl } from "@harmont/hm";

const toolchainBase = target("toolchain-base", () =>
  sh("apt-get update && apt-get install -y build-essential", { label: "toolchain base", image: "debian:12", cache: ttl(86400) }),
);
const compiled = target("compiled", () => toolchainBase().sh("make deps", { label: "deps", cache: forever() }));
const settings = target("settings", () => ({ flags: "-O2" }));

export default [
  {
    slug: "targets-one",
    pipeline: pipeline([
      compiled().sh(`make CFLAGS=${settings().flags}`, { label: "build" }),
      compiled().sh("make check", { label: "check" }),
    ]),
  },
  {
    slug: "targets-two",
    pipeline: pipeline([compiled().sh("make docs", { label: "docs" }), toolchainBase().sh("make lint", { label: "lint" })]),
  },
];
