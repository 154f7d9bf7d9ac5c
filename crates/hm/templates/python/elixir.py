"""CI for this Elixir project: `hm run` runs it on your machine."""

import harmont as hm


@hm.pipeline("ci", triggers=[hm.push(branch="main"), hm.pull_request()])
def ci() -> tuple[hm.Step, ...]:
    # Erlang/OTP and Elixir on ubuntu:24.04; `mix deps.get` is cached on mix.lock.
    project = hm.elixir(path=".")
    return (project.compile(), project.test(), project.format())
