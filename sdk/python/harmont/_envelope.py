"""The envelope: every registered pipeline with its IR (``schema_version "1"``).

:func:`render_registration` is shared by :func:`dump_registry_json`, which
also computes Harmont's ``cache.key`` for every cached step, and by hm's own
engine, which leaves the keys to ``hm``.
"""

from __future__ import annotations

from ._pipeline import pipeline as _assemble
from ._registry import REGISTRATIONS
from ._target import clear_target_memo
from ._unwrap import as_leaves

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path
    from typing import Any

    from ._registry import PipelineRegistration


def render_registration(reg: PipelineRegistration) -> dict[str, Any]:
    """``reg``'s envelope entry, without cache keys."""
    raw = reg.fn()
    try:
        leaves = as_leaves(raw)
    except TypeError as e:
        raise TypeError(f"pipeline {reg.slug!r}: invalid return value\n  → {e}") from e
    return {
        "slug": reg.slug,
        "name": reg.name,
        "allow_manual": reg.allow_manual,
        "triggers": [t.to_dict() for t in reg.triggers],
        "definition": _assemble(
            leaves, env=reg.env, timeout=reg.timeout, network=reg.network, volumes=reg.volumes
        ),
    }


def dump_registry_json(
    *,
    pipeline_org: str | None = None,
    now: int | None = None,
    base_path: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> str:
    """The envelope of every registered pipeline, as JSON, with Harmont's cache keys.

    The keys' inputs default as in :func:`harmont.json_emit.pipeline_to_json`:
    ``pipeline_org`` from ``HM_PIPELINE_ORG`` (else ``"default"``), ``now`` the
    current time, ``base_path`` the working directory (where ``on_change`` paths
    are read), ``env`` the process environment; each pipeline's own slug.
    Targets are evaluated afresh for every call.
    """
    import json
    import os
    import time

    from .keygen import resolve_pipeline_keys

    clear_target_memo()
    env_map: Mapping[str, str] = env if env is not None else os.environ
    org = pipeline_org if pipeline_org is not None else env_map.get("HM_PIPELINE_ORG", "default")
    render_now = now if now is not None else int(time.time())
    if base_path is None:
        from pathlib import Path

        base_path = Path.cwd()
    pipelines = []
    for reg in REGISTRATIONS:
        entry = render_registration(reg)
        resolve_pipeline_keys(
            entry["definition"].get("graph", {}),
            pipeline_org=org,
            pipeline_slug=reg.slug,
            now=render_now,
            base_path=base_path,
            env=env_map,
        )
        pipelines.append(entry)
    return json.dumps({"schema_version": "1", "pipelines": pipelines})
