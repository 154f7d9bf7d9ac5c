import harmont as hm


@hm.pipeline("python-pip")
def python_pip():
    return hm.python.project()


@hm.pipeline("python-tools")
def python_tools():
    toolchain = hm.python.toolchain(image="python:3.12-slim", tools=["ruff", "pytest", "ruff", "hypothesis"])
    api = toolchain.project("services/api")
    return [api.test(), api.lint(), api.fmt(), api.typecheck(), hm.py.project("cli", packages=["libpq-dev"])]
