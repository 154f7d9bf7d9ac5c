import { forever, rust, wait } from "@harmont/hm";

function rustApp() {
  let project = rust.toolchain("1.83.0").project("crates/app");
  project = project.setup("cargo install cargo-nextest --locked", { label: "nextest", cache: forever() });
  return [project, project.doc()];
}

function rustActions() {
  const project = rust.project("tools/", {
    version: "nightly",
    image: "debian:12",
    packages: ["protobuf-compiler", "curl"],
  });
  const prepared = project.setup("cargo generate-lockfile", { env: { CARGO_NET_OFFLINE: "false" } });
  return [
    project.build(),
    project.test(),
    project.doctest(),
    project.clippy(),
    project.fmt(),
    project.doc(),
    wait(),
    prepared.ci(),
    prepared.action("cargo run --bin xtask", { env: { RUST_LOG: "debug" } }),
    prepared.action("cargo bench", { label: ":zap: bench" }),
  ];
}

export const pipelines = [
  { slug: "rust-app", name: "Rust app", pipeline: rustApp },
  { slug: "rust-actions", pipeline: rustActions },
];
