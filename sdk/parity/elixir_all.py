import harmont as hm


@hm.pipeline("elixir-all")
def elixir_all():
    project = hm.elixir.project()
    return [project.compile(), project.test(), project.format(), project.credo(), project.dialyzer()]


@hm.pipeline("elixir-umbrella")
def elixir_umbrella():
    toolchain = hm.elixir.toolchain("1.18.1", image="debian:12")
    return [toolchain.project("apps/web"), toolchain.project("apps/core").credo()]
