import harmont as hm


@hm.pipeline("apt-base-shared")
def apt_base_shared():
    base = hm.apt_base(packages=("curl", "ca-certificates", "build-essential", "pkg-config", "libssl-dev", "python3", "python3-venv"))
    rust = hm.rust.toolchain(base=base)
    uv = hm.py.uv(path="py", base=base)
    return [rust.build(), uv.test()]


@hm.pipeline("apt-base-custom")
def apt_base_custom():
    base = hm.apt_base(packages=("git",), image="debian:12", label=":lock: deps")
    go = hm.go(base=base)
    web = hm.js.project(path="web", runtime="node", base=base)
    zig = hm.zig(base=base).project("z")
    return [go.build(), web.run("test"), zig.build()]
