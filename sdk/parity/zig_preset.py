import harmont as hm


@hm.pipeline("zig-default")
def zig_default():
    return hm.zig.project()


@hm.pipeline("zig-old")
def zig_old():
    project = hm.zig.toolchain("0.13.0").project("lib")
    return [project.build(), project.test(), project.fmt(), hm.zig.project(version="0.15.1")]
