"""Cache policies: when a step's snapshot may be reused instead of running it.

Made with :func:`harmont.forever`, :func:`harmont.ttl`,
:func:`harmont.on_change` and :func:`harmont.compose` (or constructed
directly) and passed as ``cache=`` to ``sh``. A step without one is never
cached (:class:`CacheNone`).
"""

from __future__ import annotations

from ._record import Record, set_field

TYPE_CHECKING = False
if TYPE_CHECKING:
    from datetime import timedelta


class CachePolicy(Record):
    """The common base; use one of the subclasses."""

    __slots__ = ()


class CacheNone(CachePolicy):
    """Never cached: the step runs on every build."""

    __slots__ = ()

    def __init__(self) -> None:
        pass


class CacheForever(CachePolicy):
    """Reused until the command, the parent or one of ``env_keys``' values changes."""

    __slots__ = ("env_keys",)
    _fields = ("env_keys",)
    env_keys: tuple[str, ...]

    def __init__(self, env_keys: tuple[str, ...] = ()) -> None:
        set_field(self, "env_keys", env_keys)


class CacheTTL(CachePolicy):
    """Reused within one window of ``duration`` (windows counted from the epoch)."""

    __slots__ = ("duration", "env_keys")
    _fields = ("duration", "env_keys")
    duration: timedelta
    env_keys: tuple[str, ...]

    def __init__(self, duration: timedelta, env_keys: tuple[str, ...] = ()) -> None:
        set_field(self, "duration", duration)
        set_field(self, "env_keys", env_keys)


class CacheOnChange(CachePolicy):
    """Reused while the files at ``paths`` (globs allowed) keep their contents."""

    __slots__ = ("paths",)
    _fields = ("paths",)
    paths: tuple[str, ...]

    def __init__(self, paths: tuple[str, ...]) -> None:
        set_field(self, "paths", paths)


class CacheCompose(CachePolicy):
    """Reused only while every one of ``policies`` would be."""

    __slots__ = ("policies",)
    _fields = ("policies",)
    policies: tuple[CachePolicy, ...]

    def __init__(self, policies: tuple[CachePolicy, ...]) -> None:
        set_field(self, "policies", policies)


__all__ = [
    "CacheCompose",
    "CacheForever",
    "CacheNone",
    "CacheOnChange",
    "CachePolicy",
    "CacheTTL",
]
