import { compose, forever, onChange, pipeline, sh, ttl } from "@harmont/hm";

const base = sh("apt-get update", { label: "apt", cache: ttl(6 * 3600) });
const tools = base.sh("make tools", { label: "tools", cache: forever({ envKeys: ["TOOLS_VERSION", "ARCH"] }) });
const deps = tools.sh("make deps", { label: "deps", cache: onChange("Makefile", "deps/**/*.lock", "vendor/") });
const daily = deps.sh("make index", {
  label: "index",
  cache: compose(ttl(86400), onChange("index.toml"), forever()),
});

export default {
  slug: "cache-policies",
  pipeline: pipeline([daily, sh("make fresh", { label: "fresh", cache: forever() })]),
};
