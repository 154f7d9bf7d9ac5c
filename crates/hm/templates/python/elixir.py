"""CI for this Elixir project: `hm run` runs it on your machine."""

import harmont as hm


@hm.pipeline("ci", triggers=[hm.push(branch="main"), hm.pull_request()])
def ci():
    # Erlang/OTP from the image, Elixir's release for it; `mix deps.get` is cached on mix.lock.
    project = hm.elixir.project()
    return [project.format(), project.compile(), project.test()]
