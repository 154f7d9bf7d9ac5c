import harmont as hm


@hm.pipeline("cmake-all")
def cmake_all():
    project = hm.cmake(path=".", defines={"CMAKE_BUILD_TYPE": "Release"})
    return [
        project.build(),
        project.test(),
        project.test(parallel=False, label="serial tests"),
        project.install(prefix="/opt/app"),
        project.fmt(),
        project.fmt(fix=True, key="fmt-fix"),
        project.lint(),
        project.package(generator="DEB"),
    ]


@hm.pipeline("cmake-variants")
def cmake_variants():
    gcc = hm.cmake(path="gcc", compiler="gcc-14", generator="make", ccache=False, target="app")
    preset = hm.cmake(path="preset", compiler="clang", preset="ci")
    vcpkg = hm.cmake(path="vcpkg", deps="vcpkg")
    toolchain = hm.cmake(compiler="clang-18", image="debian:12").setup("conan install .", label="conan", cache=hm.forever())
    lib = toolchain.project(path="lib", cache=hm.on_change("lib/CMakeLists.txt", "conanfile.txt"))
    return [gcc.build(), gcc.lint(), preset.build(), vcpkg.test(), lib.test(), lib.package()]
