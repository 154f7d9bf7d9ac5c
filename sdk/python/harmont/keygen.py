"""Harmont's cache keys: ``cache.key`` of every cached step, as Harmont's SDK computes it.

``hm`` computes its own keys when it runs a pipeline and does not need
these; they are here for code that calls :func:`harmont.dump_registry_json`
or :func:`harmont.pipeline_to_json` and expects Harmont's output.

A step's key is the SHA-256 (hex) of, NUL-separated: the organisation, the
pipeline slug, the step key, the parent's resolved cache key (``scratch``
for a root) and the policy's part:

- ``forever``: ``forever-`` + sha256(cmd NUL env), env being ``K=V`` NUL for
  each of the sorted ``env_keys`` (a missing variable reads as empty);
- ``ttl``: ``ttl-<now // duration>-`` + the same hash;
- ``on_change``: ``sha-`` + sha256 of each matched path's hash + NUL, paths
  sorted, globs expanded and sorted, missing plain paths left out;
- ``compose``: ``compose-`` + sha256 of the sub-policies' parts joined (``none``
  for an uncached one).
"""

from __future__ import annotations

import hashlib

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path
    from typing import Any

NUL = "\x00"


def resolve_pipeline_keys(
    graph: dict[str, Any],
    *,
    pipeline_org: str,
    pipeline_slug: str,
    now: int,
    base_path: Path,
    env: Mapping[str, str],
) -> dict[str, Any]:
    """Set ``cache["key"]`` on every node of ``graph`` whose policy is not ``none``, in
    node order, and return ``graph`` (changed in place). A cached step's ``builds_in``
    parent must be cached too: ``ValueError`` otherwise."""
    nodes = graph.get("nodes", [])
    key_by_idx = {i: n["step"]["key"] for i, n in enumerate(nodes)}
    parent_of: dict[str, str] = {}
    for src, dst, kind in graph.get("edges", []):
        if kind == "builds_in":
            parent_of[key_by_idx[dst]] = key_by_idx[src]
    resolved: dict[str, str] = {}
    for node in nodes:
        step = node["step"]
        cache = step.get("cache")
        if not cache or cache["policy"] == "none":
            continue
        parent_key = _lookup_parent(parent_of.get(step["key"]), resolved)
        part = _resolve_policy(cache, step.get("cmd", ""), now, base_path, env)
        key = _sha256_hex(NUL.join((pipeline_org, pipeline_slug, step["key"], parent_key, part)))
        cache["key"] = key
        resolved[step["key"]] = key
    return graph


def _lookup_parent(parent: str | None, resolved: dict[str, str]) -> str:
    if parent is None:
        return "scratch"
    key = resolved.get(parent)
    if key is None:
        raise ValueError(
            f"step references builds_in {parent!r} which has no cached "
            "key (parent must be defined upstream and cached)"
        )
    return key


def _resolve_policy(
    policy: dict[str, Any], cmd: str, now: int, base_path: Path, env: Mapping[str, str]
) -> str:
    kind = policy["policy"]
    if kind == "none":
        return "none"
    if kind == "forever":
        return "forever-" + _sha256_hex(cmd + NUL + _env_subset(policy.get("env_keys", []), env))
    if kind == "ttl":
        bucket = now // policy["duration_seconds"]
        subset = _env_subset(policy.get("env_keys", []), env)
        return f"ttl-{bucket}-" + _sha256_hex(cmd + NUL + subset)
    if kind == "on_change":
        matched: list[Path] = []
        for p in sorted(policy["paths"]):
            if any(c in p for c in "*?["):
                matched.extend(sorted(base_path.glob(p)))
            elif (base_path / p).exists():
                matched.append(base_path / p)
        return "sha-" + _sha256_hex("".join(_path_hash(m) + NUL for m in matched))
    if kind == "compose":
        parts = [
            "none" if sub["policy"] == "none" else _resolve_policy(sub, cmd, now, base_path, env)
            for sub in policy["sub_policies"]
        ]
        return "compose-" + _sha256_hex("".join(parts))
    raise ValueError(f"resolve-policy-key: unknown policy {kind!r}")


def _env_subset(env_keys: list[str], env: Mapping[str, str]) -> str:
    return "".join(f"{k}={env.get(k, '')}{NUL}" for k in sorted(env_keys))


def _path_hash(path: Path) -> str:
    """A file's SHA-256; for a directory, one SHA-256 over each file below it (sorted):
    its POSIX relative path, NUL, its bytes, NUL. ``FileNotFoundError`` if neither."""
    if path.is_file():
        return hashlib.sha256(path.read_bytes()).hexdigest()
    if path.is_dir():
        h = hashlib.sha256()
        for child in sorted(p for p in path.rglob("*") if p.is_file()):
            h.update(child.relative_to(path).as_posix().encode("utf-8"))
            h.update(b"\x00")
            h.update(child.read_bytes())
            h.update(b"\x00")
        return h.hexdigest()
    raise FileNotFoundError(f"on_change path does not exist: {path}")


def _sha256_hex(s: str) -> str:
    return hashlib.sha256(s.encode("utf-8")).hexdigest()
