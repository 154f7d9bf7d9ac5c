import { forever, pipeline } from "@harmont/hm";
import { rust } from "@harmont/hm/toolchains";

const project = rust.project({ path: "crates/app", version: "1.83.0", components: ["clippy", "rustfmt", "miri"] });

const toolchain = rust.toolchain({ path: "tools/", version: "nightly", image: "debian:12" });
const prepared = toolchain.setup("cargo generate-lockfile", { env: { CARGO_NET_OFFLINE: "false" }, cache: forever() });

export default [
  {
    slug: "rust-app",
    name: "Rust app",
    pipeline: pipeline([
      project.build({ release: true }),
      project.test({ nextest: true, features: ["a", "b"] }),
      project.doctest(),
      project.clippy({ allFeatures: true, extraLints: ["-W clippy::pedantic"] }),
      project.fmt({ flags: ["--config-path", "rustfmt.toml"] }),
      project.doc({ documentPrivateItems: true }),
      project.featurePowerset({ skip: ["a b", "c"], depth: 3 }),
      ...project.ci({ nextest: true, doc: true }),
    ]),
  },
  {
    slug: "rust-tools",
    pipeline: pipeline([
      toolchain.build({ packages: ["core", "cli x"], target: "wasm32-unknown-unknown" }),
      toolchain.build({ target: "aarch64-unknown-linux-gnu", addTarget: false, label: "cross" }),
      toolchain.test({ workspace: true, exclude: ["slow"], locked: false }),
      toolchain.clippy({ allTargets: false, denyWarnings: false }),
      toolchain.doc({ noDeps: false, denyWarnings: false, env: { RUSTDOCFLAGS: "--cfg docsrs" } }),
      toolchain.warmup({ label: ":rust: pre-build" }),
      prepared.build({ profile: "ci", flags: ["--timings"] }),
      prepared.featurePowerset({ eachFeature: true, noDevDeps: false, includeFeatures: ["x"], keepGoing: true }),
    ]),
  },
];
