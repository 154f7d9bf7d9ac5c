"""The IR of one pipeline as JSON, with Harmont's cache keys (see :mod:`harmont.keygen`)."""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path
    from typing import Any


def pipeline_to_json(
    p: dict[str, Any],
    *,
    pipeline_org: str | None = None,
    pipeline_slug: str | None = None,
    now: int | None = None,
    base_path: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> str:
    """``p`` (what ``hm.pipeline([...])`` returns) as JSON, with cache keys; ``p`` is not changed.

    Defaults: ``pipeline_org`` and ``pipeline_slug`` from ``HM_PIPELINE_ORG`` and
    ``HM_PIPELINE_SLUG`` in ``env`` (else ``"default"``), ``now`` the current
    time, ``base_path`` the working directory, ``env`` the process environment.
    """
    import copy
    import json
    import os
    import time

    from .keygen import resolve_pipeline_keys

    env_map: Mapping[str, str] = env if env is not None else os.environ
    org = pipeline_org if pipeline_org is not None else env_map.get("HM_PIPELINE_ORG", "default")
    slug = pipeline_slug if pipeline_slug is not None else env_map.get("HM_PIPELINE_SLUG", "default")
    render_now = now if now is not None else int(time.time())
    if base_path is None:
        from pathlib import Path

        base_path = Path.cwd()
    body = copy.deepcopy(p)
    resolve_pipeline_keys(
        body.get("graph", {}),
        pipeline_org=org,
        pipeline_slug=slug,
        now=render_now,
        base_path=base_path,
        env=env_map,
    )
    return json.dumps(body, ensure_ascii=False, separators=(", ", ": "))
