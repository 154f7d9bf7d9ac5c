"""CI for this Zig project: `hm run` runs it on your machine."""

import harmont as hm


@hm.pipeline("ci", triggers=[hm.push(branch="main"), hm.pull_request()])
def ci() -> tuple[hm.Step, ...]:
    # The official Zig release on ubuntu:24.04, installed once and cached.
    project = hm.zig(path=".")
    return (project.build(), project.test(), project.fmt())
