"""Durations as pipelines write them: ``"30s"``, ``"5m"``, ``"1h30m"``, seconds, or a ``timedelta``."""

from __future__ import annotations

import re

from ._errors import HarmontError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from datetime import timedelta

_UNITS = {"d": 86400, "h": 3600, "m": 60, "s": 1}
_PART = re.compile(r"(\d+)\s*([dhms])")



def seconds(duration: str | int | float | timedelta, *, what: str = "duration") -> int:
    """The whole number of seconds in ``duration``; it must be greater than zero."""
    if isinstance(duration, bool):
        raise HarmontError(f"{what} must be a duration, not {duration!r}")
    if hasattr(duration, "total_seconds"):  # a timedelta
        value = float(duration.total_seconds())
    elif isinstance(duration, (int, float)):
        value = float(duration)
    elif isinstance(duration, str):
        text = duration.strip().lower()
        if text.isdigit():
            value = float(text)
        else:
            parts = _PART.findall(text)
            if not parts or _PART.sub("", text).strip():
                raise HarmontError(f"{what} {duration!r} is not a duration such as '30s', '5m' or '1h30m'")
            value = float(sum(int(n) * _UNITS[u] for n, u in parts))
    else:
        raise HarmontError(f"{what} must be a duration, not {type(duration).__name__}")
    if value <= 0:
        raise HarmontError(f"{what} must be greater than 0, not {duration!r}")
    return max(1, int(round(value)))
