"""CI for this Python project: `hm run` runs it on your machine."""

import harmont as hm


@hm.pipeline("ci", triggers=[hm.push(branch="main"), hm.pull_request()])
def ci() -> tuple[hm.Step, ...]:
    # uv on ubuntu:24.04; `uv sync` is cached on uv.lock and pyproject.toml.
    project = hm.python(path=".")
    return (project.test(), project.lint(), project.fmt())
