import { compose, forever, onChange, sh, ttl } from "@harmont/hm";

export default {
  slug: "cache-policies",
  pipeline: [
    sh("plain", { label: "none" }),
    sh("forever", { label: "forever", cache: forever() }),
    sh("forever env", { label: "forever env", cache: forever({ envKeys: ["RUSTFLAGS", "CC"] }) }),
    sh("forever one", { label: "forever one", cache: forever({ envKeys: "CC" }) }),
    sh("ttl seconds", { label: "ttl seconds", cache: ttl(90) }),
    sh("ttl text", { label: "ttl text", cache: ttl("1d", { envKeys: ["TZ"] }) }),
    sh("ttl mixed", { label: "ttl mixed", cache: ttl("1h30m") }),
    sh("on change", { label: "on change", cache: onChange("Cargo.lock") }),
    sh("on change globs", {
      label: "on change globs",
      cache: onChange("Cargo.toml", "src/**/*.rs", ["crates/*/Cargo.toml", "**/*.proto"]),
    }),
    sh("compose", {
      label: "compose",
      cache: compose(onChange("go.sum"), ttl(604800), forever({ envKeys: ["GOFLAGS"] })),
    }),
    sh("nested", { label: "nested", cache: compose(compose(forever()), onChange(["a", "b"])) }),
  ],
};
