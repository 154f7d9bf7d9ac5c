/** CI for this Elixir project: `hm run` runs it on your machine. */
import { pullRequest, push } from "@harmont/hm";
import { elixir } from "@harmont/hm/toolchains";

// Erlang/OTP from the image, Elixir's release for it; `mix deps.get` is cached on mix.lock.
const project = elixir.project();

export default {
  slug: "ci",
  triggers: [push({ branch: "main" }), pullRequest()],
  pipeline: [project.format(), project.compile(), project.test()],
};
