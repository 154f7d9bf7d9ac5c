"""``hm.py.uv``: a uv-managed Python project, the chain of ``hm.python`` with more actions."""

from __future__ import annotations

from harmont._python import is_uv_version, resolve_paths, uv_synced
from harmont._record import Record, set_field
from harmont._toolchain import emit, split_action_kwargs
from harmont._validation import require_str

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from harmont._step import Step


class UvProject(Record):
    """A uv project synced: what ``hm.py.uv()`` returns. Actions fork off ``installed``
    (the ``uv sync`` step); a pipeline returning the project gets ``test()``."""

    __slots__ = ("path", "installed")
    _fields = __slots__
    path: str
    installed: Step

    def __init__(self, path: str, installed: Step) -> None:
        set_field(self, "path", path)
        set_field(self, "installed", installed)

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

    def run(self, cmd: str, **kw: Any) -> Step:
        """``uv run CMD``, labelled after its first word."""
        words = cmd.split()
        return self._emit(f"cd {self.path} && uv run {cmd}", f":python: {words[0] if words else 'run'}", **kw)

    def build(self, **kw: Any) -> Step:
        """``uv build``"""
        return self._emit(f"cd {self.path} && uv build", ":python: build", **kw)

    def lock_check(self, **kw: Any) -> Step:
        """``uv lock --check``"""
        return self._emit(f"cd {self.path} && uv lock --check", ":python: lock-check", **kw)

    def publish(self, **kw: Any) -> Step:
        """``uv publish``"""
        return self._emit(f"cd {self.path} && uv publish", ":python: publish", **kw)


def _make_uv(
    *,
    path: str = ".",
    version: str = "latest",
    image: str | None = None,
    base: Step | None = None,
) -> UvProject:
    if not is_uv_version(require_str(version, "py.uv: version")):
        raise ValueError(
            f"py.uv: invalid version {version!r}\n"
            '  → use "latest" or a pinned version like "0.4.18"'
        )
    return UvProject(path=path, installed=uv_synced(path=path, version=version, image=image, base=base))


class UvEntry:
    """``hm.py.uv``: call it for a :class:`UvProject`, or use a bare action
    (``hm.py.uv.test(path="api")``); a bare action's ``cache``, ``env``, ``label`` and
    ``key`` go to the step, the rest to ``hm.py.uv()``."""

    def __call__(
        self,
        *,
        path: str = ".",
        version: str = "latest",
        image: str | None = None,
        base: Step | None = None,
    ) -> UvProject:
        """uv ``version`` (``"latest"`` or ``"0.4.18"``) and the synced project at ``path``;
        ``image`` for the apt step, or ``base`` to start from an existing step."""
        return _make_uv(path=path, version=version, image=image, base=base)

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

    def run(self, cmd: str, **kw: Any) -> Step:
        action = split_action_kwargs(kw)
        return self(**kw).run(cmd, **action)

    def build(self, **kw: Any) -> Step:
        action = split_action_kwargs(kw)
        return self(**kw).build(**action)

    def lock_check(self, **kw: Any) -> Step:
        action = split_action_kwargs(kw)
        return self(**kw).lock_check(**action)

    def publish(self, **kw: Any) -> Step:
        action = split_action_kwargs(kw)
        return self(**kw).publish(**action)


uv: UvEntry = UvEntry()
