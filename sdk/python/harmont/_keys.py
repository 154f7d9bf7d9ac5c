"""Step keys: how every emitted step gets its unique ``key``.

In order of preference: the ``key=`` given to ``sh``; the step's label made
into a slug, when no other step's label makes the same slug and no ``key=``
claims it; else the first 12 hex digits of a SHA-256 over the direct
parent's key, the command and the step's position.
"""

from __future__ import annotations

import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable
    from typing import Any

    from ._step import Step

_SHORTCODE_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789_+-")
_ALNUM = "abcdefghijklmnopqrstuvwxyz0123456789"


class _SlugTable(dict[int, int]):
    """``str.translate`` table: a-z and 0-9 stay, every other character becomes a space."""

    def __missing__(self, code: int) -> int:
        kept = code if chr(code) in _ALNUM else 32
        self[code] = kept
        return kept


_SLUG_TABLE = _SlugTable()
for _code in range(128):
    _SLUG_TABLE[_code]


def _drop_shortcodes(text: str) -> str:
    """``text`` with every ``:name:`` emoji shortcode replaced by a space."""
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch == ":":
            j = i + 1
            while j < n and text[j] in _SHORTCODE_CHARS:
                j += 1
            if j > i + 1 and j < n and text[j] == ":":
                out.append(" ")
                i = j + 1
                continue
        out.append(ch)
        i += 1
    return "".join(out)


def slugify_label(label: str) -> str:
    """``label`` as a key: lowercase, ``:emoji:`` shortcodes dropped, every run of other
    characters than ASCII letters and digits turned into one ``-``, none at either end.

    ``"Café Build"`` gives ``"caf-build"``; a label of only symbols or non-ASCII
    letters gives ``""`` (such a step falls back to a hashed key).
    """
    text = label.lower()
    if ":" in text:
        text = _drop_shortcodes(text)
    return "-".join(text.translate(_SLUG_TABLE).split())


def _load_sha256() -> Callable[[bytes], Any]:
    # CPython's own SHA-256 module loads faster than hashlib, which pulls in OpenSSL.
    # Only the one this version has is tried: a failed import searches all of sys.path.
    name = "_sha2" if sys.version_info >= (3, 12) else "_sha256"
    try:
        return getattr(__import__(name), "sha256")  # type: ignore[no-any-return]
    except (ImportError, AttributeError):
        pass
    from hashlib import sha256

    return sha256


sha256 = _load_sha256()


def hash_key(parent_key: str, cmd: str, position: int) -> str:
    """The fallback key: 12 hex digits of SHA-256 over ``parent_key``, ``cmd`` and ``position``,
    NUL-separated."""
    data = b"%s\x00%s\x00%d" % (parent_key.encode("utf-8"), cmd.encode("utf-8"), position)
    return sha256(data).hexdigest()[:12]  # type: ignore[no-any-return]


def resolve_keys(steps: Iterable[Step]) -> dict[int, str]:
    """Each step's key, as ``{id(step): key}``, ``steps`` being the emitted steps in order.

    Keyed by identity: two equal steps on separate branches still get separate keys.
    A step's own ``key=`` always wins and reserves that key; a label slug is used
    only when exactly one step's label makes it (``key=`` steps included) and no
    ``key=`` or earlier slug took it.
    """
    steps_list = list(steps)
    overrides: dict[int, str] = {}
    slugs: dict[int, str] = {}
    slug_counts: dict[str, int] = {}
    for step in steps_list:
        sid = id(step)
        if step.key_override is not None:
            overrides[sid] = step.key_override
        if step.label is not None:
            slug = slugify_label(step.label)
            if slug:
                slugs[sid] = slug
                slug_counts[slug] = slug_counts.get(slug, 0) + 1
    taken = set(overrides.values())
    keys: dict[int, str] = {}
    for position, step in enumerate(steps_list):
        sid = id(step)
        override = overrides.get(sid)
        if override is not None:
            keys[sid] = override
            continue
        label_slug = slugs.get(sid)
        if label_slug is not None and label_slug not in taken and slug_counts[label_slug] == 1:
            keys[sid] = label_slug
            taken.add(label_slug)
            continue
        # The direct parent only: a fork or scratch in between counts as no parent.
        parent = step.parent
        parent_key = keys.get(id(parent), "") if parent is not None else ""
        keys[sid] = hash_key(parent_key, step.cmd or "", position)
    return keys
