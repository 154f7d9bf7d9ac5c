"""CI for this JavaScript project: `hm run` runs it on your machine."""

import harmont as hm


@hm.pipeline("ci", triggers=[hm.push(branch="main"), hm.pull_request()])
def ci():
    # Dependencies are installed from the lock file, and cached on it.
    project = hm.js.project(runtime="{runtime}", package_manager="{package_manager}")
    return [project.run("lint"), project.run("test")]
