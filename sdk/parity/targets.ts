import { forever, scratch, sh, target, ttl } from "@harmont/hm";
import type { Step } from "@harmont/hm";

const system = target("system", () =>
  sh("apt-get update && apt-get install -y make", { label: "system", cache: ttl("1d") }),
);

const tools = target("tools", (): Step => system().sh("make tools", { label: "tools", cache: forever() }));

const releaseVersion = target("release_version", () => "1.2.3");

const rustBase = target("rust_base", () => scratch({ image: "rust:1.83" }).sh("rustup component add clippy", { cache: forever() }));

export const pipelines = [
  {
    slug: "targets-build",
    pipeline: () => [tools().sh(`make release VERSION=${releaseVersion()}`), system().sh("make lint")],
  },
  {
    slug: "targets-test",
    pipeline: () => {
      const node = scratch({ image: "node:22" });
      return [tools().sh("make test"), node.sh("npm ci"), rustBase().sh("cargo clippy"), rustBase().sh("cargo clippy")];
    },
  },
];
