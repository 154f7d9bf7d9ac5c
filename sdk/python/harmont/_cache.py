"""Cache policies: when a step's stored result may be reused."""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from datetime import timedelta
    from typing import Any, Iterable

from ._duration import seconds
from ._errors import HarmontError


class CachePolicy:
    """A cache policy; build one with :func:`forever`, :func:`ttl`, :func:`on_change` or :func:`compose`."""

    __slots__ = ("policy", "env_keys", "duration_seconds", "paths", "sub_policies", "key")

    def __init__(
        self,
        policy: str,
        *,
        env_keys: tuple[str, ...] = (),
        duration_seconds: int | None = None,
        paths: tuple[str, ...] = (),
        sub_policies: tuple["CachePolicy", ...] = (),
        key: str | None = None,
    ) -> None:
        self.policy = policy
        self.env_keys = env_keys
        self.duration_seconds = duration_seconds
        self.paths = paths
        self.sub_policies = sub_policies
        self.key = key

    def _fields(self) -> tuple[Any, ...]:
        return (self.policy, self.env_keys, self.duration_seconds, self.paths, self.sub_policies, self.key)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CachePolicy) and self._fields() == other._fields()

    def __hash__(self) -> int:
        return hash(self._fields())

    def __repr__(self) -> str:
        return f"CachePolicy({self.to_ir()!r})"

    def to_ir(self) -> dict[str, Any]:
        ir: dict[str, Any] = {"policy": self.policy}
        if self.env_keys:
            ir["env_keys"] = list(self.env_keys)
        if self.duration_seconds is not None:
            ir["duration_seconds"] = self.duration_seconds
        if self.paths:
            ir["paths"] = list(self.paths)
        if self.sub_policies:
            ir["sub_policies"] = [p.to_ir() for p in self.sub_policies]
        if self.key is not None:
            ir["key"] = self.key
        return ir


def _names(env_keys: Iterable[str]) -> tuple[str, ...]:
    if isinstance(env_keys, str):
        env_keys = (env_keys,)
    names = tuple(env_keys)
    for name in names:
        if not isinstance(name, str) or not name:
            raise HarmontError(f"env_keys must be variable names, not {name!r}")
    return names


def forever(env_keys: Iterable[str] = ()) -> CachePolicy:
    """Reuse the result until the command, environment, image, parent or ``env_keys`` change."""
    return CachePolicy("forever", env_keys=_names(env_keys))


def ttl(duration: timedelta | int | float | str, env_keys: Iterable[str] = ()) -> CachePolicy:
    """Reuse the result within the same window of ``duration``."""
    return CachePolicy("ttl", env_keys=_names(env_keys), duration_seconds=seconds(duration, what="ttl"))


def on_change(*paths: str, env_keys: Iterable[str] = ()) -> CachePolicy:
    """Reuse the result until a file the ``paths`` (files, directories or globs) select changes."""
    flat: list[str] = []
    for path in paths:
        if isinstance(path, (list, tuple)):
            flat.extend(path)
        else:
            flat.append(path)
    if not flat:
        raise HarmontError("on_change needs at least one path")
    for path in flat:
        if not isinstance(path, str) or not path:
            raise HarmontError(f"on_change paths must be non-empty strings, not {path!r}")
    return CachePolicy("on_change", env_keys=_names(env_keys), paths=tuple(flat))


def compose(*policies: CachePolicy) -> CachePolicy:
    """Reuse the result only while every one of ``policies`` would."""
    if not policies:
        raise HarmontError("compose needs at least one policy")
    for policy in policies:
        if not isinstance(policy, CachePolicy):
            raise HarmontError(f"compose takes cache policies, not {policy!r}")
    return CachePolicy("compose", sub_policies=tuple(policies))
