"""Rendering and reading IR in tests."""

from __future__ import annotations

import hashlib
from typing import Any, Callable

import harmont as hm
from harmont._pipeline import render_all


def render_entry(fn: Callable[..., Any], **options: Any) -> dict[str, Any]:
    """Defines ``fn`` as the only pipeline (``options`` go to ``@hm.pipeline``) and returns its
    envelope entry."""
    hm.pipeline(**options)(fn)
    envelope = render_all()
    assert len(envelope["pipelines"]) == 1
    return envelope["pipelines"][0]


def render(fn: Callable[..., Any], **options: Any) -> dict[str, Any]:
    """The IR ``definition`` of ``fn`` rendered as the only pipeline."""
    return render_entry(fn, **options)["definition"]


def keys(definition: dict[str, Any]) -> list[str]:
    """Step keys in node order."""
    return [node["step"]["key"] for node in definition["nodes"]]


def nodes_by_key(definition: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {node["step"]["key"]: node for node in definition["nodes"]}


def steps_by_key(definition: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {key: node["step"] for key, node in nodes_by_key(definition).items()}


def edges(definition: dict[str, Any], kind: str) -> set[tuple[str, str]]:
    """``(source key, target key)`` of every edge of ``kind``."""
    names = keys(definition)
    return {(names[src], names[dst]) for src, dst, k in definition["edges"] if k == kind}


def parents(definition: dict[str, Any]) -> dict[str, str]:
    """The ``builds_in`` parent of every step that has one."""
    return {dst: src for src, dst in edges(definition, "builds_in")}


def derived_key(parent_key: str, cmd: str, position: int) -> str:
    """The key a step gets from neither ``key=`` nor a unique label."""
    return hashlib.sha256(f"{parent_key}\x1f{cmd}\x1f{position}".encode()).hexdigest()[:12]


def check_envelope(envelope: dict[str, Any]) -> None:
    """Asserts the envelope's structure: versions, edges in range, unique keys, every node complete."""
    assert envelope["schema_version"] == "1"
    slugs = [p["slug"] for p in envelope["pipelines"]]
    assert len(slugs) == len(set(slugs)), f"duplicate slugs: {slugs}"
    for entry in envelope["pipelines"]:
        assert set(entry) == {"slug", "name", "allow_manual", "triggers", "definition"}
        definition = entry["definition"]
        assert definition["version"] == "0"
        assert definition["edge_property"] == "directed"
        assert definition["node_holes"] == []
        nodes = definition["nodes"]
        for node in nodes:
            assert set(node) == {"step", "env"}
            assert isinstance(node["step"]["key"], str) and node["step"]["key"]
            assert isinstance(node["step"]["cmd"], str)
            assert isinstance(node["env"], dict)
            assert all(isinstance(v, str) for v in node["env"].values())
        names = keys(definition)
        assert len(names) == len(set(names)), f"{entry['slug']}: duplicate keys {names}"
        builds_in: dict[int, int] = {}
        for src, dst, kind in definition["edges"]:
            assert kind in ("builds_in", "depends_on")
            assert 0 <= src < len(nodes) and 0 <= dst < len(nodes), f"edge {src}->{dst} out of range"
            assert src != dst
            if kind == "builds_in":
                assert dst not in builds_in, f"{names[dst]} has two parents"
                builds_in[dst] = src
        for i, node in enumerate(nodes):
            # Children never start from an image of their own unless given one; roots always have one.
            if i not in builds_in:
                assert node["step"].get("image"), f"root {names[i]} has no image"
