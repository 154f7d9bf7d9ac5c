"""Pipelines, waits and triggers, and their rendering to hm's IR."""

from __future__ import annotations

import hashlib
import re
from collections import Counter

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable, Iterable, Mapping, Sequence

from ._duration import seconds
from ._errors import HarmontError, where
from ._step import DEFAULT_IMAGE, Fork, Step, _check_env, slugify
from ._target import Render

SLUG = re.compile(r"^[a-z][a-z0-9-]{0,63}$")
#: The environment every step starts with, before the pipeline's and its own.
BASE_ENV = {"DEBIAN_FRONTEND": "noninteractive", "TERM": "dumb"}


class Wait:
    """A join in a pipeline's list (see :func:`wait`)."""

    __slots__ = ("continue_on_failure",)

    def __init__(self, continue_on_failure: bool = False) -> None:
        self.continue_on_failure = continue_on_failure

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Wait) and other.continue_on_failure == self.continue_on_failure

    def __hash__(self) -> int:
        return hash((Wait, self.continue_on_failure))

    def __repr__(self) -> str:
        return f"hm.wait(continue_on_failure={self.continue_on_failure})"


def wait(continue_on_failure: bool = False) -> Wait:
    """Every step after this in the list runs after every step before it (back to the previous
    wait). With ``continue_on_failure`` they run even if those failed."""
    return Wait(bool(continue_on_failure))


class Trigger:
    """A trigger for hosted CI; kept in the IR."""

    __slots__ = ("ir",)

    def __init__(self, ir: Mapping[str, Any]) -> None:
        self.ir = ir

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Trigger) and other.ir == self.ir

    def __hash__(self) -> int:
        return hash(repr(self.ir))

    def __repr__(self) -> str:
        return f"Trigger({self.ir!r})"


def _globs(value: str | Sequence[str], what: str) -> list[str]:
    items = [value] if isinstance(value, str) else list(value)
    if not items or not all(isinstance(i, str) and i for i in items):
        raise HarmontError(f"{what} must be a glob or a list of globs, not {value!r}")
    return items


def push(branch: str | Sequence[str] | None = None, *, tag: str | Sequence[str] | None = None) -> Trigger:
    """A push to matching branches, or of matching tags (exactly one of the two)."""
    if (branch is None) == (tag is None):
        raise HarmontError("hm.push takes exactly one of branch= or tag=")
    if branch is not None:
        return Trigger({"type": "push", "branches": _globs(branch, "branch")})
    return Trigger({"type": "push", "tags": _globs(tag, "tag")})  # type: ignore[arg-type]


def pull_request(
    branches: str | Sequence[str] | None = None,
    types: Sequence[str] = ("opened", "synchronize", "reopened"),
) -> Trigger:
    """A pull request (to matching branches) of the given event types."""
    ir: dict[str, Any] = {"type": "pull_request"}
    if branches is not None:
        ir["branches"] = _globs(branches, "branches")
    kinds = [types] if isinstance(types, str) else list(types)
    if not kinds or not all(isinstance(t, str) and t for t in kinds):
        raise HarmontError(f"types must be pull request event types, not {types!r}")
    ir["types"] = kinds
    return Trigger(ir)


pr = pull_request


class PipelineDef:
    """A pipeline as ``@hm.pipeline`` recorded it."""

    def __init__(
        self,
        fn: Callable[..., Any],
        slug: str,
        name: str,
        triggers: tuple[Trigger, ...],
        allow_manual: bool,
        env: dict[str, str],
        timeout_seconds: int | None,
        source: str = "",
    ) -> None:
        self.fn = fn
        self.slug = slug
        self.name = name
        self.triggers = triggers
        self.allow_manual = allow_manual
        self.env = env
        self.timeout_seconds = timeout_seconds
        self.source = source


#: Every pipeline, in definition order.
PIPELINES: list[PipelineDef] = []


def pipeline(
    slug: Any = None,
    *,
    name: str | None = None,
    triggers: Iterable[Trigger] = (),
    allow_manual: bool = True,
    env: Mapping[str, str] | None = None,
    timeout: Any = None,
) -> Any:
    """Define a pipeline: ``@hm.pipeline`` or ``@hm.pipeline("slug", triggers=[hm.push(branch="main")])``.

    The function returns a step, a list of steps (nested lists and :func:`wait` allowed), or a
    toolchain project (its default actions)."""

    def register(fn: Callable[..., Any]) -> Callable[..., Any]:
        if not callable(fn):
            raise HarmontError(f"@hm.pipeline decorates a function, not {fn!r}")
        pipeline_slug = slug if isinstance(slug, str) else fn.__name__.replace("_", "-")
        if not SLUG.fullmatch(pipeline_slug):
            raise HarmontError(
                f"invalid pipeline slug `{pipeline_slug}`: it must match ^[a-z][a-z0-9-]{{0,63}}$"
            )
        for other in PIPELINES:
            if other.slug == pipeline_slug:
                raise HarmontError(f"duplicate pipeline slug `{pipeline_slug}` (also defined in {other.source})")
        trigger_list = tuple(triggers)
        for trigger in trigger_list:
            if not isinstance(trigger, Trigger):
                raise HarmontError(f"triggers must be hm.push(...) or hm.pull_request(...), not {trigger!r}")
        PIPELINES.append(
            PipelineDef(
                fn=fn,
                slug=pipeline_slug,
                name=name if name is not None else pipeline_slug,
                triggers=trigger_list,
                allow_manual=bool(allow_manual),
                env=_check_env(env) or {},
                timeout_seconds=None if timeout is None else seconds(timeout, what="pipeline timeout"),
                source=where(fn),
            )
        )
        return fn

    if callable(slug) and not isinstance(slug, str):
        fn, slug = slug, None
        return register(fn)
    if slug is not None and not isinstance(slug, str):
        raise HarmontError(f"a pipeline's slug must be a string, not {slug!r}")
    return register


def _flatten(items: Any, out: list[Step | Wait]) -> None:
    if items is None:
        return
    if isinstance(items, Step):
        if items.is_scratch:
            raise HarmontError("a scratch root runs nothing by itself; call .sh(...) on it")
        out.append(items)
    elif isinstance(items, Fork):
        _flatten(items.step, out)
    elif isinstance(items, Wait):
        out.append(items)
    elif isinstance(items, (list, tuple)):
        for item in items:
            _flatten(item, out)
    elif hasattr(items, "_hm_actions"):
        _flatten(items._hm_actions(), out)
    else:
        raise HarmontError(f"a pipeline returns steps, lists of steps, waits or toolchain projects, not {items!r}")


def _derived_key(parent_key: str, cmd: str, position: int) -> str:
    """A key from what places a step: its parent's key, its command, and how many steps with the
    same parent and command come before it in the pipeline."""
    text = f"{parent_key}\x1f{cmd}\x1f{position}"
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def render_pipeline(defn: PipelineDef, render: Render) -> dict[str, Any]:
    """The pipeline's envelope entry, with its IR ``definition``."""
    result = render.call(defn.fn, f"pipeline `{defn.slug}`")
    sequence: list[Step | Wait] = []
    _flatten(result, sequence)

    nodes: list[Step] = []
    index: dict[int, int] = {}
    groups: list[list[int]] = [[]]
    waits: list[Wait] = []

    def emit(step: Step) -> None:
        chain = []
        walk: Step | None = step
        while walk is not None and id(walk) not in index:
            chain.append(walk)
            walk = walk.parent
        for node in reversed(chain):
            index[id(node)] = len(nodes)
            groups[-1].append(len(nodes))
            nodes.append(node)

    for item in sequence:
        if isinstance(item, Wait):
            groups.append([])
            waits.append(item)
        else:
            emit(item)

    # Keys: given, else the label's slug when no other step has it, else a hash.
    slugs = [slugify(n.label) if n.key is None and n.label else "" for n in nodes]
    taken = Counter(n.key for n in nodes if n.key) + Counter(s for s in slugs if s)
    keys: list[str] = []
    seen_places: Counter[tuple[int, str | None]] = Counter()
    for node, slug in zip(nodes, slugs):
        place = (index[id(node.parent)] if node.parent is not None else -1, node.cmd)
        position = seen_places[place]
        seen_places[place] += 1
        if node.key:
            key = node.key
        elif slug and taken[slug] == 1:
            key = slug
        else:
            parent_key = keys[index[id(node.parent)]] if node.parent is not None else ""
            key = _derived_key(parent_key, node.cmd or "", position)
        keys.append(key)
    seen: dict[str, int] = {}
    for i, key in enumerate(keys):
        if key in seen:
            raise HarmontError(f"pipeline `{defn.slug}`: two steps have the key `{key}`; give one of them another key=")
        seen[key] = i

    lenient = {i for wait_, group in zip(waits, groups[1:]) if wait_.continue_on_failure for i in group}
    ir_nodes = []
    for i, node in enumerate(nodes):
        step: dict[str, Any] = {"key": keys[i], "cmd": node.cmd}
        if node.label:
            step["label"] = node.label
        image = node.image if node.parent is not None else (node.image or DEFAULT_IMAGE)
        if image:
            step["image"] = image
        if node.env:
            step["env"] = dict(node.env)
        if node.cache is not None:
            step["cache"] = node.cache.to_ir()
        if node.timeout_seconds is not None:
            step["timeout_seconds"] = node.timeout_seconds
        if node.runner is not None:
            step["runner"] = node.runner
        if node.runner_args is not None:
            step["runner_args"] = node.runner_args
        if i in lenient:
            step["continue_on_failure"] = True
        env = {**BASE_ENV, **defn.env, **(node.env or {})}
        ir_nodes.append({"step": step, "env": env})

    edges: list[list[Any]] = []
    for i, node in enumerate(nodes):
        if node.parent is not None:
            edges.append([index[id(node.parent)], i, "builds_in"])
    # Each group waits for the last non-empty one before it, so `wait(), wait()` joins like one wait.
    before: list[int] = []
    for after in groups:
        for dst in after:
            for src in before:
                edges.append([src, dst, "depends_on"])
        if after:
            before = after

    definition: dict[str, Any] = {
        "version": "0",
        "nodes": ir_nodes,
        "node_holes": [],
        "edge_property": "directed",
        "edges": edges,
    }
    if defn.timeout_seconds is not None:
        definition["timeout_seconds"] = defn.timeout_seconds
    return {
        "slug": defn.slug,
        "name": defn.name,
        "allow_manual": defn.allow_manual,
        "triggers": [dict(t.ir) for t in defn.triggers],
        "definition": definition,
    }


def render_all() -> dict[str, Any]:
    """The envelope of every pipeline defined so far; targets are computed once."""
    render = Render()
    return {"schema_version": "1", "pipelines": [render_pipeline(p, render) for p in PIPELINES]}
