import harmont as hm


@hm.pipeline("python-uv")
def python_uv():
    app = hm.python(path="app", uv_version="0.4.18")
    prepared = app.setup("uv run python gen.py", label="codegen")
    return [
        app.test(),
        app.lint(),
        app.fmt(),
        app.typecheck(paths=["src", "tests"]),
        prepared.typecheck(paths="src", label="types"),
    ]


@hm.pipeline("py-uv")
def py_uv():
    lib = hm.py.uv(path="lib", image="python:3.12-slim")
    latest = hm.py.uv()
    return [
        lib.test(env={"PYTHONHASHSEED": "0"}),
        lib.lint(),
        lib.fmt(),
        lib.typecheck(),
        lib.run("flask db upgrade"),
        lib.build(),
        lib.lock_check(),
        lib.publish(key="publish-lib"),
        latest.test(label="latest"),
    ]
