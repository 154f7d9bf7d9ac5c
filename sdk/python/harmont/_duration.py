"""Durations given as ``"1h30m"``, whole seconds or a ``timedelta``.

:func:`parse_duration` is what ``hm.timeout`` and a pipeline's ``timeout=``
accept (units ``h``, ``m``, ``s``). :func:`ttl_duration` is what
``hm.ttl`` accepts: a ``timedelta`` as in Harmont, and, as an addition of
``hm``, seconds or a string that may also use days (``"1d"``).
"""

from __future__ import annotations

import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from datetime import timedelta

_UNIT_SECONDS = {"h": 3600, "m": 60, "s": 1}
_TTL_UNIT_SECONDS = {"d": 86400, "h": 3600, "m": 60, "s": 1}


def _is_timedelta(value: object) -> bool:
    # A timedelta exists only once `datetime` is imported; no need to import it here.
    datetime = sys.modules.get("datetime")
    return datetime is not None and isinstance(value, datetime.timedelta)


def _sum_segments(text: str, units: dict[str, int]) -> int | None:
    """The seconds of a run of ``<digits><unit>`` segments, or ``None`` if ``text`` is not one."""
    total = 0
    digits = ""
    for ch in text:
        if ch.isdecimal():
            digits += ch
        elif ch in units and digits:
            total += int(digits) * units[ch]
            digits = ""
        else:
            return None
    if digits or not text:
        return None
    return total


def parse_duration(value: str | int | timedelta) -> int:
    """``value`` in whole seconds, which must be positive.

    Raises ``TypeError`` for anything but a str, int (not bool) or timedelta,
    and ``ValueError`` for a malformed string or a duration that is not > 0.
    """
    if isinstance(value, bool):
        raise TypeError(f"hm: timeout duration must be a str, int, or timedelta — got {value!r}")
    if _is_timedelta(value):
        seconds = int(value.total_seconds())  # type: ignore[union-attr]
    elif isinstance(value, int):
        seconds = value
    elif isinstance(value, str):
        parsed = _sum_segments(value.strip(), _UNIT_SECONDS)
        if parsed is None:
            raise ValueError(
                f"hm: invalid timeout duration {value!r}\n"
                '  → use a Go-style duration like "30s", "5m", or "1h30m" (units: h, m, s)'
            )
        seconds = parsed
    else:
        raise TypeError(
            f"hm: timeout duration must be a str, int, or timedelta — got {type(value).__name__}"
        )
    if seconds <= 0:
        raise ValueError(
            f"hm: timeout duration must be positive — got {value!r}\n"
            '  → use a value like "30s" or "5m"'
        )
    return seconds


def ttl_duration(value: str | int | timedelta) -> timedelta:
    """What ``hm.ttl`` keeps: ``value`` as a ``timedelta``.

    A ``timedelta`` is kept as given (Harmont's form). Whole seconds and
    strings such as ``"1d"`` or ``"6h"`` are converted; they must be > 0.
    """
    if _is_timedelta(value):
        return value  # type: ignore[return-value]
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise TypeError(
            f"hm.ttl: duration must be a timedelta, int seconds or a string like \"1d\" — "
            f"got {type(value).__name__}"
        )
    if isinstance(value, str):
        seconds = _sum_segments(value.strip(), _TTL_UNIT_SECONDS)
        if seconds is None:
            raise ValueError(
                f"hm.ttl: invalid duration {value!r}\n"
                '  → use a timedelta, whole seconds, or a string like "1d", "6h" or "1h30m" '
                "(units: d, h, m, s)"
            )
    else:
        seconds = value
    if seconds <= 0:
        raise ValueError(f"hm.ttl: duration must be positive — got {value!r}")
    from datetime import timedelta

    return timedelta(seconds=seconds)
