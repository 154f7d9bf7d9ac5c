"""CI for this CMake project: `hm run` runs it on your machine."""

import harmont as hm


@hm.pipeline("ci", triggers=[hm.push(branch="main"), hm.pull_request()])
def ci() -> tuple[hm.Step, ...]:
    # CMake, Ninja, ccache and clang tools from apt; configure and build are cached on CMakeLists.txt.
    project = hm.cmake(path=".")
    return (project.build(), project.test(), project.fmt())
