"""Rendering pipelines and reading their graphs in tests."""

from __future__ import annotations

import hashlib
from typing import Any

from harmont._envelope import render_registration
from harmont._registry import REGISTRATIONS
from harmont._target import clear_target_memo


def render_all() -> list[dict[str, Any]]:
    """Every registered pipeline's envelope entry, as hm's engine renders them (no cache keys)."""
    clear_target_memo()
    return [render_registration(reg) for reg in REGISTRATIONS]


def render_one() -> dict[str, Any]:
    """The only registered pipeline's envelope entry."""
    entries = render_all()
    assert len(entries) == 1
    return entries[0]


def graph(ir: dict[str, Any]) -> dict[str, Any]:
    """The graph of an IR definition (``hm.pipeline([...])``'s value)."""
    return ir["graph"]


def keys(ir: dict[str, Any]) -> list[str]:
    """Step keys in node order."""
    return [n["step"]["key"] for n in graph(ir)["nodes"]]


def steps(ir: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Step objects by key."""
    return {n["step"]["key"]: n["step"] for n in graph(ir)["nodes"]}


def envs(ir: dict[str, Any]) -> dict[str, dict[str, str]]:
    """Node environments by key."""
    return {n["step"]["key"]: n["env"] for n in graph(ir)["nodes"]}


def edges(ir: dict[str, Any], kind: str) -> list[tuple[str, str]]:
    """``(source key, target key)`` of the edges of ``kind``, in order."""
    names = keys(ir)
    return [(names[s], names[d]) for s, d, k in graph(ir)["edges"] if k == kind]


def parents(ir: dict[str, Any]) -> dict[str, str]:
    """Each step's ``builds_in`` parent."""
    return {dst: src for src, dst in edges(ir, "builds_in")}


def hashed_key(parent_key: str, cmd: str, position: int) -> str:
    """The key a step gets from neither ``key=`` nor a usable label, computed here independently."""
    data = parent_key.encode() + b"\0" + cmd.encode() + b"\0" + str(position).encode()
    return hashlib.sha256(data).hexdigest()[:12]


def strip_cache_keys(value: Any) -> Any:
    """``value`` (an envelope or IR) without any ``cache.key``."""
    if isinstance(value, dict):
        return {
            k: strip_cache_keys(v)
            for k, v in value.items()
            if not (k == "key" and "policy" in value)
        }
    if isinstance(value, list):
        return [strip_cache_keys(v) for v in value]
    return value
