import harmont as hm


@hm.pipeline("cmake-all")
def cmake_all():
    project = hm.cmake.project()
    return [project.build(), project.test(), project.fmt(), project.lint(), project.package()]


@hm.pipeline("cmake-debug")
def cmake_debug():
    toolchain = hm.cmake.toolchain(build_type="Debug", packages=["libboost-dev"])
    return [toolchain.project("engine"), hm.cmake.project("tools", build_type="RelWithDebInfo").package()]
