/** CI for this Rust project: `hm run` runs it on your machine. */
import { pipeline, pullRequest, push, type PipelineDefinition } from "@harmont/hm";
import { rust } from "@harmont/hm/toolchains";

// rustup's stable toolchain on ubuntu:24.04; the warm-up build is cached on Cargo.lock, Cargo.toml and the sources.
const project = rust.project({ path: "." });

const pipelines: PipelineDefinition[] = [
  {
    slug: "ci",
    triggers: [push({ branch: "main" }), pullRequest()],
    pipeline: pipeline(project.ci()),
  },
];

export default pipelines;
