"""The Python (uv) preset: ``hm.python(path=".")`` and its bare actions.

Chain: apt base (curl, ca-certificates, python3, python3-venv) →
``:python: uv-install`` (cached forever) → ``:python: uv-sync``
(``uv sync --all-extras``, cached on ``uv.lock`` and ``pyproject.toml``; all
extras because test and lint tools usually live in a ``dev`` extra) → the
actions. :mod:`harmont.py.uv` is the same chain with more actions.
"""

from __future__ import annotations

from ._record import Record, set_field
from ._toolchain import advance_install, emit, make_install_chain, split_action_kwargs
from ._validation import is_dotted_numbers, line_end, require_str
from .cache import CacheForever, CacheOnChange

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Self

    from ._step import Step
    from .cache import CachePolicy

APT_PACKAGES = ("curl", "ca-certificates", "python3", "python3-venv")


def is_uv_version(version: str) -> bool:
    """``^([0-9]+\\.[0-9]+\\.[0-9]+|latest)$``"""
    text = line_end(version)
    return text == "latest" or is_dotted_numbers(text, 3, 3)


def resolve_paths(paths: str | list[str] | None) -> str:
    """``typecheck``'s ``paths=``: ``.`` by default, a list joined by spaces."""
    if paths is None:
        return "."
    if isinstance(paths, str):
        return paths
    return " ".join(paths)


def uv_install_cmd(version: str) -> str:
    """Installs uv (``"latest"`` or a pinned version) and links it into ``/usr/local/bin``."""
    pin = "" if version == "latest" else f"UV_VERSION={version} "
    return (
        f"{pin}curl -LsSf https://astral.sh/uv/install.sh | sh && "
        "ln -sf /root/.local/bin/uv /usr/local/bin/uv && uv --version"
    )


def uv_synced(*, path: str, version: str, image: str | None, base: Step | None) -> Step:
    """The chain up to ``:python: uv-sync`` for the project at ``path``."""
    installed = make_install_chain(
        apt_packages=APT_PACKAGES,
        install_cmd=uv_install_cmd(version),
        install_cache=CacheForever(env_keys=()),
        lang_tag="python",
        install_tag="uv-install",
        image=image,
        base=base,
    )
    return installed.sh(
        f"cd {path} && uv sync --all-extras",
        label=":python: uv-sync",
        cache=CacheOnChange(paths=(f"{path}/uv.lock", f"{path}/pyproject.toml")),
    )


class PythonToolchain(Record):
    """A uv project synced: what ``hm.python()`` returns. Actions fork off ``installed``
    (the ``uv sync`` step)."""

    __slots__ = ("path", "installed")
    _fields = __slots__
    path: str
    installed: Step

    def __init__(self, path: str, installed: Step) -> None:
        set_field(self, "path", path)
        set_field(self, "installed", installed)

    def setup(
        self,
        cmd: str,
        *,
        cwd: str | None = None,
        label: str | None = None,
        cache: CachePolicy | None = None,
        env: dict[str, str] | None = None,
    ) -> Self:
        """A copy whose actions run after ``cmd``."""
        return advance_install(self, cmd, cwd=cwd, label=label, cache=cache, env=env)

    def _emit(self, cmd: str, default_label: str, **kw: Any) -> Step:
        return emit(self.installed, cmd, default_label, kw)

    def test(self, **kw: Any) -> Step:
        """``uv run pytest``"""
        return self._emit(f"cd {self.path} && uv run pytest", ":python: test", **kw)

    def lint(self, **kw: Any) -> Step:
        """``uv run ruff check .``"""
        return self._emit(f"cd {self.path} && uv run ruff check .", ":python: lint", **kw)

    def fmt(self, **kw: Any) -> Step:
        """``uv run ruff format --check .``"""
        return self._emit(f"cd {self.path} && uv run ruff format --check .", ":python: fmt", **kw)

    def typecheck(self, *, paths: str | list[str] | None = None, **kw: Any) -> Step:
        """``uv run ty check PATHS`` (default ``.``)."""
        return self._emit(
            f"cd {self.path} && uv run ty check {resolve_paths(paths)}", ":python: typecheck", **kw
        )


def _make_python(
    *,
    path: str = ".",
    uv_version: str = "latest",
    image: str | None = None,
    base: Step | None = None,
) -> PythonToolchain:
    if not is_uv_version(require_str(uv_version, "hm.python: uv_version")):
        raise ValueError(
            f"hm.python: invalid uv_version {uv_version!r}\n"
            '  → use "latest" or a pinned version like "0.4.18"'
        )
    synced = uv_synced(path=path, version=uv_version, image=image, base=base)
    return PythonToolchain(path=path, installed=synced)


class PythonEntry:
    """``hm.python``: call it for a :class:`PythonToolchain`, or use a bare action
    (``hm.python.test(path="api")``); a bare action's ``cache``, ``env``, ``label`` and
    ``key`` go to the step, the rest to ``hm.python()``."""

    def __call__(
        self,
        *,
        path: str = ".",
        uv_version: str = "latest",
        image: str | None = None,
        base: Step | None = None,
    ) -> PythonToolchain:
        """uv (``"latest"`` or ``"0.4.18"``) and the synced project at ``path``; ``image``
        for the apt step, or ``base`` to start from an existing step."""
        return _make_python(path=path, uv_version=uv_version, image=image, base=base)

    def test(self, **kw: Any) -> Step:
        action = split_action_kwargs(kw)
        return self(**kw).test(**action)

    def lint(self, **kw: Any) -> Step:
        action = split_action_kwargs(kw)
        return self(**kw).lint(**action)

    def fmt(self, **kw: Any) -> Step:
        action = split_action_kwargs(kw)
        return self(**kw).fmt(**action)

    def typecheck(self, *, paths: str | list[str] | None = None, **kw: Any) -> Step:
        action = split_action_kwargs(kw)
        return self(**kw).typecheck(paths=paths, **action)


python: PythonEntry = PythonEntry()
