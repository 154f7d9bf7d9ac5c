/** CI for this Elixir project: `hm run` runs it on your machine. */
import { pipeline, pullRequest, push, type PipelineDefinition } from "@harmont/hm";
import { elixir } from "@harmont/hm/toolchains";

// Erlang/OTP and Elixir on ubuntu:24.04; `mix deps.get` is cached on mix.lock.
const project = elixir({ path: "." });

const pipelines: PipelineDefinition[] = [
  {
    slug: "ci",
    triggers: [push({ branch: "main" }), pullRequest()],
    pipeline: pipeline([project.compile(), project.test(), project.format()]),
  },
];

export default pipelines;
