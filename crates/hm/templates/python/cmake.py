"""CI for this CMake project: `hm run` runs it on your machine."""

import harmont as hm


@hm.pipeline("ci", triggers=[hm.push(branch="main"), hm.pull_request()])
def ci():
    # CMake, Ninja and clang tools from the image; configuring is cached on the CMake files.
    project = hm.cmake.project()
    return [project.fmt(), project.build(), project.test()]
