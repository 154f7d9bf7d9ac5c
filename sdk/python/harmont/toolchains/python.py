"""Python: a virtual environment with pip (``hm.python``), or uv (``hm.py.uv``)."""

from __future__ import annotations


TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Iterable

from .._step import Step
from ._base import SYSTEM_PATH, Project, Toolchain, base_step, check_version, dependency_step, install_step, joined


class PythonProject(Project):
    #: Prefix that runs a tool in the project's environment.
    runner = ""

    def _tool(self, cmd: str, label: str) -> Step:
        return self.action(f"{self.runner}{cmd}", label=label)

    def test(self) -> Step:
        return self._tool("python -m pytest", "pytest")

    def lint(self) -> Step:
        return self._tool("ruff check .", "ruff check")

    def fmt(self) -> Step:
        return self._tool("ruff format --check .", "ruff format")

    def typecheck(self) -> Step:
        return self._tool("mypy .", "mypy")

    def defaults(self) -> list[Step]:
        return [self.lint(), self.fmt(), self.typecheck(), self.test()]


class UvProject(PythonProject):
    runner = "uv run "


PIP_PACKAGES = ("ca-certificates", "git", "python3", "python3-venv")
PIP_ENV = {
    "VIRTUAL_ENV": "/opt/venv",
    "PATH": f"/opt/venv/bin:{SYSTEM_PATH}",
    "PIP_DISABLE_PIP_VERSION_CHECK": "1",
    "PYTHONDONTWRITEBYTECODE": "1",
}
PIP_DEPS = (
    "if [ -f requirements.txt ]; then pip install -r requirements.txt; fi"
    " && if [ -f pyproject.toml ]; then pip install -e .; fi"
)


class PipToolchain(Toolchain):
    def project(self, path: str = ".") -> PythonProject:
        locks = [joined(path, "requirements.txt"), joined(path, "pyproject.toml")]
        deps = dependency_step(self.install, PIP_DEPS, locks, path, "pip install", self.env)
        return PythonProject(deps, path, self.env)


UV_PACKAGES = ("ca-certificates", "curl", "git")


def uv_env(python: str) -> dict[str, str]:
    return {
        "UV_PYTHON": python,
        "UV_PYTHON_INSTALL_DIR": "/opt/uv/python",
        "UV_PROJECT_ENVIRONMENT": "/opt/venv",
        "UV_LINK_MODE": "copy",
        "PATH": f"/opt/venv/bin:{SYSTEM_PATH}",
    }


class UvToolchain(Toolchain):
    def project(self, path: str = ".") -> UvProject:
        deps = dependency_step(
            self.install, "uv sync --frozen --all-extras", [joined(path, "uv.lock")], path, "uv sync", self.env
        )
        return UvProject(deps, path, self.env)


class Uv:
    """``hm.py.uv``: Python managed by uv; ``hm.py.uv.project(python="3.12")``."""

    DEFAULT_PYTHON = "3.12"

    def toolchain(
        self,
        python: str = DEFAULT_PYTHON,
        *,
        image: str | None = None,
        base: Step | None = None,
        packages: Iterable[str] = (),
    ) -> UvToolchain:
        python = check_version(python, "Python")
        env = uv_env(python)
        start = base_step(base, (*UV_PACKAGES, *packages), image)
        # uv's installer picks the build for the machine's architecture.
        cmd = (
            "curl -LsSf https://astral.sh/uv/install.sh | env UV_INSTALL_DIR=/usr/local/bin UV_NO_MODIFY_PATH=1 sh"
            f" && uv python install {python}"
        )
        return UvToolchain(install_step(start, cmd, f"uv python {python}", env), env)

    def project(
        self,
        path: str = ".",
        *,
        python: str = DEFAULT_PYTHON,
        image: str | None = None,
        base: Step | None = None,
        packages: Iterable[str] = (),
    ) -> UvProject:
        return self.toolchain(python, image=image, base=base, packages=packages).project(path)


class Python:
    """``hm.python`` (also ``hm.py``): the image's ``python3`` in a virtual environment with pip
    and the test, lint and type tools; ``hm.py.uv`` for uv."""

    uv = Uv()

    def toolchain(
        self,
        *,
        image: str | None = None,
        base: Step | None = None,
        packages: Iterable[str] = (),
        tools: Iterable[str] = ("pytest", "ruff", "mypy"),
    ) -> PipToolchain:
        start = base_step(base, (*PIP_PACKAGES, *packages), image)
        tool_list = " ".join(sorted(set(tools)))
        cmd = f"python3 -m venv /opt/venv && /opt/venv/bin/pip install --upgrade pip {tool_list}"
        return PipToolchain(install_step(start, cmd, "python venv", PIP_ENV), PIP_ENV)

    def project(
        self,
        path: str = ".",
        *,
        image: str | None = None,
        base: Step | None = None,
        packages: Iterable[str] = (),
    ) -> PythonProject:
        return self.toolchain(image=image, base=base, packages=packages).project(path)


python = Python()
