"""The one exception a pipeline definition raises for its own mistakes."""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable


class HarmontError(Exception):
    """A mistake in a pipeline definition: a bad slug, a cycle, a zero timeout..."""


#: The project root, set by hm's engine; messages show paths relative to it.
project_root: list[str] = []


def where(fn: Callable[..., Any]) -> str:
    """``file:line`` of a function's definition, for messages."""
    code = getattr(fn, "__code__", None)
    if code is None:
        return repr(fn)
    path = code.co_filename
    if project_root and os.path.isabs(path):
        rel = os.path.relpath(path, project_root[0])
        if not rel.startswith(".."):
            path = rel
    return f"{path}:{code.co_firstlineno}"
