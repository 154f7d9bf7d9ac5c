"""Triggers: the repository events a pipeline runs on in hosted CI.

``hm run`` ignores them; they are kept in the envelope as
``{"event": "push", ...}`` objects so that the same file serves both.
"""

from __future__ import annotations

from ._record import Record, set_field

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def _normalise_globs(value: str | list[str] | tuple[str, ...] | None) -> tuple[str, ...] | None:
    if value is None:
        return None
    if isinstance(value, str):
        return (value,)
    return tuple(value)


class Trigger(Record):
    """The common base; ``to_dict()`` gives the envelope object."""

    __slots__ = ()

    def to_dict(self) -> dict[str, Any]:
        raise NotImplementedError


class PushTrigger(Trigger):
    """A push to one of ``branches`` or of one of ``tags`` (globs)."""

    __slots__ = ("branches", "tags")
    _fields = ("branches", "tags")
    branches: tuple[str, ...] | None
    tags: tuple[str, ...] | None

    def __init__(self, branches: tuple[str, ...] | None, tags: tuple[str, ...] | None) -> None:
        set_field(self, "branches", branches)
        set_field(self, "tags", tags)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"event": "push"}
        if self.branches is not None:
            out["branches"] = list(self.branches)
        if self.tags is not None:
            out["tags"] = list(self.tags)
        return out


def push(
    branch: str | list[str] | tuple[str, ...] | None = None,
    tag: str | list[str] | tuple[str, ...] | None = None,
) -> PushTrigger:
    """Run on a push to ``branch`` or of ``tag``: exactly one, a glob or a list of globs
    (``*`` matches anything, ``/`` included; ``?`` one character)."""
    if (branch is None) == (tag is None):
        raise ValueError(
            "hm.push: pass exactly one of branch or tag\n"
            '  → e.g. hm.push(branch="main") or hm.push(tag="v*")'
        )
    return PushTrigger(branches=_normalise_globs(branch), tags=_normalise_globs(tag))


_PR_TYPES = frozenset({"opened", "synchronize", "reopened", "closed", "ready_for_review"})
_DEFAULT_PR_TYPES = ("opened", "synchronize", "reopened")


class PullRequestTrigger(Trigger):
    """A pull request into one of ``branches`` (any when ``None``), on one of ``types``."""

    __slots__ = ("branches", "types")
    _fields = ("branches", "types")
    branches: tuple[str, ...] | None
    types: tuple[str, ...]

    def __init__(self, branches: tuple[str, ...] | None, types: tuple[str, ...]) -> None:
        set_field(self, "branches", branches)
        set_field(self, "types", types)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"event": "pull_request"}
        if self.branches is not None:
            out["branches"] = list(self.branches)
        out["types"] = list(self.types)
        return out


def pull_request(
    branches: str | list[str] | tuple[str, ...] | None = None,
    types: list[str] | tuple[str, ...] | None = None,
) -> PullRequestTrigger:
    """Run on pull requests into ``branches`` (their target branch; globs), for the
    ``types`` of activity: by default opened, synchronize and reopened."""
    resolved = tuple(types) if types is not None else _DEFAULT_PR_TYPES
    if not resolved:
        raise ValueError("hm.pull_request: types must be non-empty")
    bad = [t for t in resolved if t not in _PR_TYPES]
    if bad:
        valid = ", ".join(sorted(_PR_TYPES))
        raise ValueError(f"unknown pull_request type {bad[0]!r}\n  → valid: {valid}")
    return PullRequestTrigger(branches=_normalise_globs(branches), types=resolved)


__all__ = ["PullRequestTrigger", "PushTrigger", "Trigger", "pull_request", "push"]
