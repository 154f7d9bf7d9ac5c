"""Small checks shared by the SDK.

Version strings and slugs are checked by hand rather than with :mod:`re`,
which would add its import time to every evaluation. Each check follows the
regular expression Harmont uses, including ``$`` accepting one trailing
newline.
"""

from __future__ import annotations


def validate_positive_int(value: int | None, field_name: str, container_name: str) -> None:
    """Raise ``ValueError`` unless ``value`` is ``None`` or an int >= 1."""
    if value is None:
        return
    if not isinstance(value, int) or value < 1:
        raise ValueError(f"{container_name}.{field_name} must be a positive integer; got {value!r}")


def require_str(value: object, what: str) -> str:
    """``value`` itself; ``TypeError`` naming ``what`` when it is not a string."""
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a string, got {type(value).__name__}")
    return value


def line_end(text: str) -> str:
    """``text`` without one trailing newline: what a pattern ending in ``$`` sees."""
    return text[:-1] if text.endswith("\n") else text


def is_digits(text: str) -> bool:
    """``[0-9]+``."""
    return text.isascii() and text.isdigit()


def is_dotted_numbers(text: str, least: int, most: int) -> bool:
    """``[0-9]+`` repeated ``least`` to ``most`` times, separated by dots."""
    parts = text.split(".")
    return least <= len(parts) <= most and all(is_digits(p) for p in parts)


def only_chars(text: str, allowed: str) -> bool:
    """``[allowed]+``: non-empty and every character in ``allowed``."""
    return bool(text) and all(ch in allowed for ch in text)


LOWER_ALNUM = "abcdefghijklmnopqrstuvwxyz0123456789"
