"""CI for this JavaScript project: `hm run` runs it on your machine."""

import harmont as hm


@hm.pipeline("ci", triggers=[hm.push(branch="main"), hm.pull_request()])
def ci() -> tuple[hm.Step, ...]:
    # The runtime and package manager come from package.json and the lock file; dependencies are cached on the lock file.
    project = hm.js.project(path=".")
    return (project.run("lint"), project.run("test"))
