"""CI for this Zig project: `hm run` runs it on your machine."""

import harmont as hm


@hm.pipeline("ci", triggers=[hm.push(branch="main"), hm.pull_request()])
def ci():
    # The official Zig release for the machine's architecture.
    project = hm.zig.project()
    return [project.fmt(), project.build(), project.test()]
