"""CI for this Python project: `hm run` runs it on your machine."""

import harmont as hm


@hm.pipeline("ci", triggers=[hm.push(branch="main"), hm.pull_request()])
def ci():
    # A virtual environment with pytest, ruff and mypy; dependencies are cached on
    # requirements.txt and pyproject.toml.
    project = hm.python.project()
    return [project.lint(), project.fmt(), project.test()]
