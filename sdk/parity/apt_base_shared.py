import harmont as hm


@hm.pipeline("apt-base-shared")
def apt_base_shared():
    base = hm.apt_base(["build-essential", "ca-certificates", "curl", "git"])
    return [
        hm.go.project(base=base),
        hm.rust.project("tools", base=base),
        base.sh("make", key="make"),
        hm.apt_base("git curl git build-essential ca-certificates").sh("make again"),
    ]


@hm.pipeline("apt-base-preset-sharing")
def apt_base_preset_sharing():
    return [
        hm.rust.project("a"),
        hm.rust.project("b"),
        hm.go.project(packages=["protobuf-compiler"]),
        hm.apt_base([], image="alpine:3").sh("true"),
        hm.apt_base(["curl"], image="debian:12"),
        hm.elixir.project(base=hm.scratch("elixir:1.17")),
    ]
