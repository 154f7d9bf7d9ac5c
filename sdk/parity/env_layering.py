import harmont as hm


@hm.pipeline("env-layering", env={"CI": "true", "STAGE": "pipeline", "TERM": "xterm"})
def env_layering():
    root = hm.sh("make", label="root", env={"STAGE": "step", "ONLY_ROOT": "1"})
    child = root.sh("make check", label="child")
    elixir = hm.elixir(path="ex")
    return [child, elixir.compile(env={"MIX_ENV": "prod"}), elixir.test()]


@hm.pipeline("env-plain")
def env_plain():
    return [hm.sh("env", label="env", env={"DEBIAN_FRONTEND": "readline"})]
