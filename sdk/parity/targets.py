from datetime import timedelta

import harmont as hm


@hm.target()
def toolchain_base():
    return hm.sh("apt-get update && apt-get install -y build-essential", label="toolchain base", image="debian:12", cache=hm.ttl(timedelta(days=1)))


@hm.target()
def compiled(toolchain_base: hm.Target):
    return toolchain_base.sh("make deps", label="deps", cache=hm.forever())


@hm.target()
def settings():
    return {"flags": "-O2"}


@hm.pipeline("targets-one")
def targets_one(compiled: hm.Target):
    flags = settings()["flags"]
    return [compiled.sh(f"make CFLAGS={flags}", label="build"), compiled.sh("make check", label="check")]


@hm.pipeline("targets-two")
def targets_two():
    return [compiled().sh("make docs", label="docs"), toolchain_base().sh("make lint", label="lint")]
