import harmont as hm


@hm.pipeline("elixir-all", env={"MIX_ENV": "test"})
def elixir_all():
    project = hm.elixir(path=".")
    return [
        project.compile(),
        project.test(cover=True, partitions=4),
        project.format(),
        project.credo(),
        project.credo(strict=False, key="credo-lax"),
        project.dialyzer(),
        project.sobelow(),
        project.deps_audit(),
        project.hex_audit(),
        project.mix("assets.deploy"),
        project.release(mix_env="staging"),
    ]


@hm.pipeline("elixir-versions")
def elixir_versions():
    umbrella = hm.elixir(path="apps/api", elixir_version="1.17.3", otp_version="26", image="debian:12")
    seeded = umbrella.setup("mix run priv/seeds.exs", label="seed")
    return [umbrella.test(env={"MIX_ENV": "ci"}), seeded.compile(label="compile after seeding")]
