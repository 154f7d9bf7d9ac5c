"""The step: one node of a chain, and the roots and barriers chains start from.

A :class:`Step` never changes; ``sh`` and ``fork`` return new steps that
point back at the one they were called on (``parent``). Steps without a
command (``scratch()`` roots, ``fork()`` branch points, ``wait()`` barriers)
are not emitted themselves: rendering walks through them.
"""

from __future__ import annotations

from ._record import Record, set_field
from ._volume import check_volumes

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from ._volume import Volumes
    from .cache import CachePolicy


class Step(Record):
    """An immutable chain node; build chains with :func:`scratch`, ``sh`` and ``fork``.

    ``image`` matters only on a root (a step with no emitted ancestor); a child
    boots from its parent's snapshot. ``key_override`` is the ``key=`` given to
    ``sh``; ``runner``/``runner_args`` select and configure an executor plugin;
    ``volumes`` are the cache volumes mounted into it (an addition of ``hm``).
    """

    __slots__ = (
        "cmd",
        "parent",
        "is_wait",
        "continue_on_failure",
        "label",
        "cache",
        "env",
        "timeout_seconds",
        "image",
        "runner",
        "runner_args",
        "key_override",
        "volumes",
    )
    _fields = __slots__

    cmd: str | None
    parent: Step | None
    is_wait: bool
    continue_on_failure: bool
    label: str | None
    cache: CachePolicy | None
    env: dict[str, str] | None
    timeout_seconds: int | None
    image: str | None
    runner: str | None
    runner_args: dict[str, Any] | None
    key_override: str | None
    volumes: Volumes | None

    def __init__(
        self,
        cmd: str | None = None,
        parent: Step | None = None,
        is_wait: bool = False,
        continue_on_failure: bool = False,
        label: str | None = None,
        cache: CachePolicy | None = None,
        env: dict[str, str] | None = None,
        timeout_seconds: int | None = None,
        image: str | None = None,
        runner: str | None = None,
        runner_args: dict[str, Any] | None = None,
        key_override: str | None = None,
        volumes: Volumes | None = None,
    ) -> None:
        set_field(self, "cmd", cmd)
        set_field(self, "parent", parent)
        set_field(self, "is_wait", is_wait)
        set_field(self, "continue_on_failure", continue_on_failure)
        set_field(self, "label", label)
        set_field(self, "cache", cache)
        set_field(self, "env", env)
        set_field(self, "timeout_seconds", timeout_seconds)
        set_field(self, "image", image)
        set_field(self, "runner", runner)
        set_field(self, "runner_args", runner_args)
        set_field(self, "key_override", key_override)
        set_field(self, "volumes", volumes)

    def sh(
        self,
        cmd: str,
        *,
        cwd: str | None = None,
        label: str | None = None,
        cache: CachePolicy | None = None,
        env: dict[str, str] | None = None,
        image: str | None = None,
        runner: str | None = None,
        runner_args: dict[str, Any] | None = None,
        key: str | None = None,
        volumes: Volumes | None = None,
    ) -> Step:
        """A new step running ``cmd`` in this one's snapshot (``builds_in``).

        ``cwd`` runs the command in that directory (``cd CWD && CMD``); ``key``
        fixes the step's key instead of deriving it from the label or command.
        ``volumes`` (an addition of ``hm``) mounts cache volumes into the step:
        mount path (absolute, or relative to the workspace) to a volume's name
        or :func:`harmont.volume`, e.g. ``{"target": "cargo-target"}``; they
        persist across runs and are no part of its snapshot or cache key.
        To bound its run time, wrap the result in :func:`harmont.timeout`.
        """
        if cwd == "":
            raise ValueError(
                "hm: cwd must be a non-empty path\n"
                '  → omit cwd= to run in the workspace root, or pass cwd="some/dir"'
            )
        if not isinstance(cmd, str):
            raise TypeError(
                f"hm: sh() takes the command as a string, got {type(cmd).__name__}\n"
                '  → e.g. hm.sh("make test")'
            )
        if (
            (label is not None and label.__class__ is not str)
            or (key is not None and key.__class__ is not str)
            or (image is not None and image.__class__ is not str)
        ):
            _not_text(label=label, key=key, image=image)
        if volumes is not None:
            volumes = check_volumes(volumes, "sh()")
        if cwd is not None:
            cmd = f"cd {cwd} && {cmd}"
        # A scratch root's image goes to its first command; after that, children
        # boot from the parent's snapshot and carry none.
        if image is None and self.cmd is None:
            image = self.image
        return Step(cmd, self, False, False, label, cache, env, None, image, runner, runner_args, key, volumes)

    def fork(self, label: str | None = None) -> Step:
        """A branch point after this step: each ``sh`` on it starts a separate branch."""
        return Step(None, self, False, False, label)


def _not_text(**values: object) -> None:
    # Harmont fails later (on a label) or writes IR that no reader takes.
    for what, value in values.items():
        if value is not None and not isinstance(value, str):
            raise TypeError(f"hm: sh() takes {what}= as a string, got {type(value).__name__}")


def scratch() -> Step:
    """An empty root: the first ``sh`` on it starts a chain from the base image."""
    return Step()


def wait(*, continue_on_failure: bool = False) -> Step:
    """A barrier for a pipeline's leaf list: the leaves after it wait for those before it.

    ``continue_on_failure=True`` (an addition of ``hm``) lets the steps after
    the barrier run even when steps before it failed.
    """
    return Step(is_wait=True, continue_on_failure=continue_on_failure)
