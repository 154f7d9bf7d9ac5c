"""CI for this Go module: `hm run` runs it on your machine."""

import harmont as hm


@hm.pipeline("ci", triggers=[hm.push(branch="main"), hm.pull_request()])
def ci():
    # The official Go release; `go mod download` is cached on go.sum.
    project = hm.go.project()
    return [project.fmt(), project.vet(), project.build(), project.test()]
