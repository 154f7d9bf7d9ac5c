"""CI for this Python project (uv): `hm run` runs it on your machine."""

import harmont as hm


@hm.pipeline("ci", triggers=[hm.push(branch="main"), hm.pull_request()])
def ci():
    # Python installed by uv; `uv sync` is cached on uv.lock.
    project = hm.py.uv.project(python="3.12")
    return [project.lint(), project.fmt(), project.test()]
