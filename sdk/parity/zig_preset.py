import harmont as hm


@hm.pipeline("zig-preset")
def zig_preset():
    project = hm.zig(path=".")
    old = hm.zig(path="legacy", version="0.13.0")
    toolchain = hm.zig(version="0.15.1", image="debian:12").setup("zig version > /tmp/v", label="record")
    a = toolchain.project("lib-a")
    b = toolchain.project("lib-b").setup("zig build gen")
    return [project.build(), project.test(), project.fmt(), old.build(), a.build(), a.test(), b.test()]
