/** CI for this Rust project: `hm run` runs it on your machine. */
import { pullRequest, push } from "@harmont/hm";
import { rust } from "@harmont/hm/toolchains";

// rustup's stable toolchain on ubuntu:24.04; `cargo fetch` is cached on Cargo.lock.
const project = rust.project();

export default {
  slug: "ci",
  triggers: [push({ branch: "main" }), pullRequest()],
  pipeline: [project.fmt(), project.clippy(), project.build(), project.test()],
};
