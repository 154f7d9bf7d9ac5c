"""The pipeline factory: from leaf steps to the IR (``{"version": "0", "graph": ...}``).

Rendering walks back from every leaf through ``parent`` links, orders the
steps parents first (leaf by leaf, each chain from its root), gives every
command step a key and a node, and turns parent links into ``builds_in``
edges and ``wait()`` barriers into ``depends_on`` edges. The graph is in
petgraph's serde layout. Cache keys are not computed here (see
:mod:`harmont.keygen`).
"""

from __future__ import annotations

from ._duration import parse_duration
from ._keys import resolve_keys
from ._step import Step
from ._volume import check_volumes, volumes_to_ir
from .cache import CacheCompose, CacheForever, CacheNone, CacheOnChange, CacheTTL

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from ._volume import Volumes
    from .cache import CachePolicy

#: The image of a root step that names none.
DEFAULT_IMAGE = "ubuntu:24.04"

#: The environment every node starts from, before the pipeline's and the step's own.
BASE_ENV = {"DEBIAN_FRONTEND": "noninteractive", "TERM": "dumb"}


def pipeline(
    leaves: list[Step] | tuple[Step, ...],
    *,
    env: dict[str, str] | None = None,
    timeout: str | int | None = None,
    network: str | None = None,
    volumes: Volumes | None = None,
) -> dict[str, Any]:
    """The IR of the pipeline ending in ``leaves``.

    ``leaves`` are the last steps of its branches, with ``wait()`` barriers
    between groups; nested lists are flattened (an addition of ``hm``). ``env``
    applies to every step (a step's own env wins). ``timeout`` bounds the
    whole build (``"30m"``, ``"1h"`` or seconds). ``network`` is ``"host"``
    or ``"none"`` (the steps get only a loopback of their own); an addition
    of ``hm``, written as ``definition.network`` and left out when ``None``.
    ``volumes`` mounts cache volumes into every step, as a step's ``volumes=``
    does (a step's own for the same path wins); an addition of ``hm``,
    written as ``definition.volumes`` and left out when ``None``.
    """
    check_network(network)
    volumes = check_volumes(volumes, "pipeline")
    if not leaves:
        raise ValueError(
            "pipeline must have at least one leaf — "
            "pass the terminal step(s) of each branch in the first argument"
        )
    out: dict[str, Any] = {"version": "0"}
    if timeout is not None:
        out["timeout_seconds"] = parse_duration(timeout)
    if network is not None:
        out["network"] = network
    if volumes is not None:
        out["volumes"] = volumes_to_ir(volumes)
    out["graph"] = _lower_to_graph(_flatten(leaves), env=env)
    return out


#: The values of a pipeline's ``network``.
NETWORKS = ("host", "none")


def check_network(network: object) -> None:
    """``TypeError`` or ``ValueError`` unless ``network`` is ``None``, ``"host"`` or ``"none"``."""
    if network is None:
        return
    if not isinstance(network, str):
        raise TypeError(f"a pipeline's network must be a string, got {type(network).__name__}")
    if network not in NETWORKS:
        raise ValueError(
            f"invalid pipeline network {network!r}\n  → use \"host\" (the default) or \"none\" (no network but a loopback)"
        )


def _flatten(leaves: list[Step] | tuple[Step, ...]) -> list[Step]:
    if all(leaf.__class__ is Step for leaf in leaves):
        return list(leaves)
    from ._unwrap import as_leaves

    return list(as_leaves(leaves))


def _lower_to_graph(leaves: list[Step], *, env: dict[str, str] | None = None) -> dict[str, Any]:
    """The graph of the steps reachable from ``leaves``.

    Steps without a command (scratch roots, forks) become no node; their
    children take the nearest command ancestor as ``builds_in`` parent. A wait
    barrier makes every node after it ``depends_on`` every node emitted
    between it and the barrier before.
    """
    ordered = _topo_collect(leaves)
    command_steps = [s for s in ordered if s.cmd is not None and not s.is_wait]
    keys = resolve_keys(command_steps)
    index: dict[int, int] = {}
    first_with_key: dict[str, int] = {}
    for i, s in enumerate(command_steps):
        index[id(s)] = i
        first_with_key.setdefault(keys[id(s)], i)

    base_env = dict(BASE_ENV)
    if env:
        base_env.update(env)

    nodes: list[dict[str, Any]] = []
    edges: list[list[Any]] = []
    since_wait: list[int] = []
    after_wait: list[int] = []
    lenient = False
    for s in ordered:
        if s.is_wait:
            after_wait = since_wait
            since_wait = []
            lenient = s.continue_on_failure
            continue
        if s.cmd is None:
            continue
        node_idx = index[id(s)]
        step: dict[str, Any] = {"key": keys[id(s)], "cmd": s.cmd}
        if s.label is not None:
            step["label"] = s.label
        if s.cache is not None:
            step["cache"] = _cache_to_dict(s.cache)
        if s.timeout_seconds is not None:
            step["timeout_seconds"] = s.timeout_seconds
        if s.image is not None:
            step["image"] = s.image
        if s.runner is not None:
            step["runner"] = s.runner
        if s.runner_args is not None:
            step["runner_args"] = s.runner_args

        parent_key = _resolved_parent_key(s, keys)
        if parent_key is not None:
            # The first step with that key, as Harmont does when keys repeat.
            edges.append([first_with_key[parent_key], node_idx, "builds_in"])
        elif "image" not in step:
            step["image"] = DEFAULT_IMAGE
        if after_wait:
            edges.extend([dep, node_idx, "depends_on"] for dep in after_wait)
            if lenient:
                step["continue_on_failure"] = True
        if s.volumes is not None:
            step["volumes"] = volumes_to_ir(s.volumes)

        node_env = dict(base_env)
        if s.env:
            node_env.update(s.env)
        nodes.append({"step": step, "env": node_env})
        since_wait.append(node_idx)

    return {"nodes": nodes, "node_holes": [], "edge_property": "directed", "edges": edges}


def _topo_collect(leaves: list[Step]) -> list[Step]:
    """Every step reachable from ``leaves``, parents first.

    Leaf by leaf, each leaf's chain from the oldest step not yet collected;
    a wait barrier stays where it is in the leaf list.
    """
    seen: set[int] = set()
    ordered: list[Step] = []
    for leaf in leaves:
        if leaf.is_wait:
            ordered.append(leaf)
            continue
        chain: list[Step] = []
        node: Step | None = leaf
        while node is not None and id(node) not in seen:
            chain.append(node)
            node = node.parent
        for s in reversed(chain):
            if id(s) not in seen:
                seen.add(id(s))
                ordered.append(s)
    return ordered


def _resolved_parent_key(s: Step, keys: dict[int, str]) -> str | None:
    """The key of the nearest ancestor that has a command, if any."""
    node = s.parent
    while node is not None:
        if node.cmd is not None and not node.is_wait:
            return keys[id(node)]
        node = node.parent
    return None


def _cache_to_dict(policy: CachePolicy) -> dict[str, Any]:
    """A cache policy as its IR object."""
    if isinstance(policy, CacheNone):
        return {"policy": "none"}
    if isinstance(policy, CacheForever):
        return {"policy": "forever", "env_keys": list(policy.env_keys)}
    if isinstance(policy, CacheTTL):
        return {
            "policy": "ttl",
            "duration_seconds": int(policy.duration.total_seconds()),
            "env_keys": list(policy.env_keys),
        }
    if isinstance(policy, CacheOnChange):
        return {"policy": "on_change", "paths": list(policy.paths)}
    if isinstance(policy, CacheCompose):
        return {"policy": "compose", "sub_policies": [_cache_to_dict(p) for p in policy.policies]}
    raise TypeError(f"unknown CachePolicy: {type(policy).__name__}")


def pipeline_to_json(p: dict[str, Any], **kw: Any) -> str:
    """:func:`harmont.json_emit.pipeline_to_json`, for ``hm.pipeline_to_json(hm.pipeline(...))``."""
    from .json_emit import pipeline_to_json as emit

    return emit(p, **kw)
