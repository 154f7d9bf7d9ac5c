import harmont as hm


@hm.pipeline("python-uv")
def python_uv():
    return hm.py.uv.project()


@hm.pipeline("python-uv-custom")
def python_uv_custom():
    tool = hm.py.uv.toolchain("3.13", packages=["build-essential"])
    project = tool.project("backend").setup("uv run python manage.py collectstatic --noinput", label="static")
    return [project.test(), project.typecheck(), hm.py.uv.project("docs", python="3.11").lint()]
