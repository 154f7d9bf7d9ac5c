"""C and C++ with CMake and Ninja from the image's packages: configure on the CMake files, then
build, test, format, lint and package actions."""

from __future__ import annotations


TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Iterable

from .._step import Step
from ._base import SYSTEM_PATH, Project, Toolchain, base_step, check_version, dependency_step, install_step, joined

PACKAGES = ("build-essential", "ca-certificates", "clang-format", "clang-tidy", "cmake", "git", "ninja-build")
ENV = {"PATH": SYSTEM_PATH, "CMAKE_GENERATOR": "Ninja"}
BUILD_DIR = "build"
SOURCES = r"-name '*.c' -o -name '*.cc' -o -name '*.cpp' -o -name '*.h' -o -name '*.hpp'"


class CmakeProject(Project):
    def build(self) -> Step:
        return self.action(f"cmake --build {BUILD_DIR}", label="cmake build")

    def test(self) -> Step:
        return self.action(
            f"cmake --build {BUILD_DIR} && ctest --test-dir {BUILD_DIR} --output-on-failure", label="ctest"
        )

    def fmt(self) -> Step:
        cmd = f"find . -path ./{BUILD_DIR} -prune -o \\( {SOURCES} \\) -print | xargs -r clang-format --dry-run --Werror"
        return self.action(cmd, label="clang-format")

    def lint(self) -> Step:
        cmd = (
            f"find . -path ./{BUILD_DIR} -prune -o \\( -name '*.c' -o -name '*.cc' -o -name '*.cpp' \\) -print "
            f"| xargs -r clang-tidy -p {BUILD_DIR}"
        )
        return self.action(cmd, label="clang-tidy")

    def package(self) -> Step:
        return self.action(
            f"cmake --build {BUILD_DIR} && cd {BUILD_DIR} && cpack", label="cpack"
        )

    def defaults(self) -> list[Step]:
        return [self.fmt(), self.build(), self.test()]


class CmakeToolchain(Toolchain):
    def __init__(self, install: Step, env: dict[str, str], build_type: str) -> None:
        super().__init__(install, env)
        self.build_type = build_type

    def project(self, path: str = ".") -> CmakeProject:
        cmd = f"cmake -S . -B {BUILD_DIR} -G Ninja -DCMAKE_BUILD_TYPE={self.build_type} -DCMAKE_EXPORT_COMPILE_COMMANDS=ON"
        inputs = [joined(path, "CMakeLists.txt"), joined(path, "**/CMakeLists.txt"), joined(path, "**/*.cmake")]
        deps = dependency_step(self.install, cmd, inputs, path, "cmake configure", self.env)
        return CmakeProject(deps, path, self.env)


class Cmake:
    """``hm.cmake``: ``hm.cmake.project(build_type="Debug")``."""

    def toolchain(
        self,
        *,
        build_type: str = "Release",
        image: str | None = None,
        base: Step | None = None,
        packages: Iterable[str] = (),
    ) -> CmakeToolchain:
        build_type = check_version(build_type, "CMake build type")
        start = base_step(base, (*PACKAGES, *packages), image)
        install = install_step(start, "cmake --version && ninja --version", "cmake", ENV)
        return CmakeToolchain(install, ENV, build_type)

    def project(
        self,
        path: str = ".",
        *,
        build_type: str = "Release",
        image: str | None = None,
        base: Step | None = None,
        packages: Iterable[str] = (),
    ) -> CmakeProject:
        return self.toolchain(build_type=build_type, image=image, base=base, packages=packages).project(path)


cmake = Cmake()
