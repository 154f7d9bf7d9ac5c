"""CI for this Go module: `hm run` runs it on your machine."""

import harmont as hm


@hm.pipeline("ci", triggers=[hm.push(branch="main"), hm.pull_request()])
def ci() -> tuple[hm.Step, ...]:
    # The official Go release on ubuntu:24.04, installed once and cached.
    project = hm.go(path=".")
    return (project.build(), project.test(), project.vet(), project.fmt())
