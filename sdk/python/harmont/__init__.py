"""Pipelines as code, Harmont's Python API: ``import harmont as hm``.

Steps: ``hm.sh(cmd, ...)`` starts a chain, ``step.sh(...)`` continues it,
``step.fork()`` branches it, ``hm.scratch()`` is an empty root and
``hm.wait()`` a barrier between groups of leaves; ``hm.timeout(d, step)``
bounds a step. Cache policies: ``hm.forever()``, ``hm.ttl(...)``,
``hm.on_change(...)``, ``hm.compose(...)``. Cache volumes (an addition of
``hm``): ``volumes=`` on ``sh`` and on pipelines, ``hm.volume(...)``.

``hm.pipeline`` has two forms: ``hm.pipeline([leaves], env=...)`` returns
a pipeline's IR, and ``@hm.pipeline("slug", ...)`` registers a function
returning its leaves. ``@hm.target()`` makes shared, memoised building
blocks that parameters annotated ``hm.Target[...]`` receive by name.
Toolchain presets: ``hm.go``, ``hm.rust``, ``hm.js``/``hm.ts``,
``hm.python``, ``hm.py.uv``, ``hm.zig``, ``hm.cmake``, ``hm.elixir``,
``hm.apt_base``.

The presets, ``hm.Target`` and ``hm.Pipeline`` are imported on first use:
``hm`` evaluates pipeline files on every command, and most use few of them.
"""

from __future__ import annotations

from . import _decorator
from ._duration import parse_duration as _parse_duration
from ._duration import ttl_duration as _ttl_duration
from ._envelope import dump_registry_json
from ._pipeline import pipeline as _pipeline_factory
from ._pipeline import pipeline_to_json
from ._step import Step, scratch, wait
from ._target import clear_target_cache, target
from ._typing import BaseImage
from ._volume import Volume, volume
from .cache import CacheCompose, CacheForever, CacheNone, CacheOnChange, CachePolicy, CacheTTL
from .triggers import pull_request, push
from .triggers import pull_request as pr

TYPE_CHECKING = False
if TYPE_CHECKING:
    from datetime import timedelta
    from typing import Any

    from ._volume import Volumes

    from . import py
    from ._cmake import CMakeProject, CMakeToolchain, cmake
    from ._elixir import elixir
    from ._go import go
    from ._js import JsProject, js, ts
    from ._python import python
    from ._rust import RustProject, rust
    from ._toolchain import apt_base
    from ._typing import Target
    from ._zig import zig
    from .types import Pipeline


def pipeline(*args: Any, **kwargs: Any) -> Any:
    """The IR of a pipeline, or a decorator registering one, by the first argument.

    - ``hm.pipeline([leaves], env=None, timeout=None, network=None, volumes=None)``
      (a list or tuple first): the pipeline's IR, ``{"version": "0", "graph": ...}``.
    - ``@hm.pipeline(slug=None, *, name=None, triggers=(), allow_manual=True,
      env=None, timeout=None, network=None, volumes=None)``: registers the
      decorated function.
      ``network="none"`` (an addition of ``hm``) runs its steps with no
      network but a loopback of their own; ``volumes`` (an addition of ``hm``)
      mounts cache volumes into every step (a step's own for a path wins).
      ``@hm.pipeline`` without parentheses works too (an addition of ``hm``).

    Steps given one by one (``hm.pipeline(step)``) are a ``TypeError``: wrap
    them in a list.
    """
    if args and isinstance(args[0], (list, tuple)):
        return _pipeline_factory(args[0], **kwargs)
    if args and all(isinstance(a, Step) for a in args):
        n = len(args)
        raise TypeError(
            "hm.pipeline() takes a single list of leaves, not variadic Step arguments\n"
            f"  observed: {n} positional Step argument{'s' if n != 1 else ''}\n"
            "  → wrap the leaves in a list, e.g. hm.pipeline([step]) or hm.pipeline([a, b])"
        )
    if len(args) == 1 and not kwargs and callable(args[0]):
        return _decorator.pipeline()(args[0])
    return _decorator.pipeline(*args, **kwargs)


def ttl(duration: timedelta) -> CacheTTL:
    """Cached for ``duration``: the snapshot is reused within each window of that length.

    ``hm`` also takes whole seconds or a string such as ``"1d"`` or ``"6h"``.
    """
    return CacheTTL(duration=_ttl_duration(duration))


def on_change(*paths: str) -> CacheOnChange:
    """Cached until a file at one of ``paths`` (relative to the project root; globs
    allowed) changes."""
    for path in paths:
        if not isinstance(path, str):
            # Harmont writes such a path into the IR, where no reader takes it.
            raise TypeError(
                f"hm.on_change: paths are strings, got {type(path).__name__}\n"
                '  → pass each path as its own argument, e.g. hm.on_change("a", "b/**")'
            )
    return CacheOnChange(paths=tuple(paths))


def forever(env_keys: tuple[str, ...] = ()) -> CacheForever:
    """Cached until the command, the parent or the value of one of ``env_keys`` changes.

    Suits installs whose command pins the version; not downloads of things that move.
    """
    return CacheForever(env_keys=env_keys)


def compose(*policies: CachePolicy) -> CacheCompose:
    """Cached only while every one of ``policies`` would be."""
    return CacheCompose(policies=tuple(policies))


def timeout(duration: str | int | timedelta, step: Step) -> Step:
    """``step`` with a time limit: ``"30s"``, ``"5m"``, ``"1h30m"``, seconds or a
    ``timedelta``. The step fails as timed out when it runs longer. Replaces any limit
    ``step`` had; a ``wait()`` barrier cannot have one."""
    if not isinstance(step, Step):
        raise TypeError(
            f"hm: timeout() wraps a step, got {type(step).__name__}\n"
            '  → e.g. hm.timeout("30s", hm.sh("make test"))'
        )
    if step.is_wait:
        raise ValueError(
            "hm: timeout() cannot wrap a wait() barrier\n"
            '  → apply timeout() to a command step, e.g. hm.timeout("30s", hm.sh("make test"))'
        )
    return step._replace(timeout_seconds=_parse_duration(duration))  # type: ignore[no-any-return]


def sh(
    cmd: str,
    *,
    cwd: str | None = None,
    label: str | None = None,
    cache: CachePolicy | None = None,
    env: dict[str, str] | None = None,
    image: str | None = None,
    key: str | None = None,
    volumes: Volumes | None = None,
) -> Step:
    """A chain's first step: ``hm.scratch().sh(cmd, ...)``."""
    return scratch().sh(cmd, cwd=cwd, label=label, cache=cache, env=env, image=image, key=key, volumes=volumes)


def group(steps: list[Step] | tuple[Step, ...]) -> tuple[Step, ...]:
    """``steps`` as a tuple of leaves."""
    return tuple(steps)


# Imported on first use (see the module's docstring): name -> (module, attribute).
_LAZY = {
    "go": ("._go", "go"),
    "rust": ("._rust", "rust"),
    "RustProject": ("._rust", "RustProject"),
    "js": ("._js", "js"),
    "ts": ("._js", "ts"),
    "JsProject": ("._js", "JsProject"),
    "python": ("._python", "python"),
    "zig": ("._zig", "zig"),
    "cmake": ("._cmake", "cmake"),
    "CMakeProject": ("._cmake", "CMakeProject"),
    "CMakeToolchain": ("._cmake", "CMakeToolchain"),
    "elixir": ("._elixir", "elixir"),
    "apt_base": ("._toolchain", "apt_base"),
    "py": (".py", ""),
    "Target": ("._typing", "Target"),
    "Pipeline": (".types", "Pipeline"),
}

if not TYPE_CHECKING:

    def __getattr__(name: str) -> object:
        where = _LAZY.get(name)
        if where is None:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        from importlib import import_module

        module = import_module(where[0], __name__)
        value = getattr(module, where[1]) if where[1] else module
        globals()[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "BaseImage",
    "CMakeProject",
    "CMakeToolchain",
    "CacheCompose",
    "CacheForever",
    "CacheNone",
    "CacheOnChange",
    "CachePolicy",
    "CacheTTL",
    "JsProject",
    "Pipeline",
    "RustProject",
    "Step",
    "Target",
    "Volume",
    "apt_base",
    "cmake",
    "compose",
    "dump_registry_json",
    "elixir",
    "forever",
    "go",
    "group",
    "js",
    "on_change",
    "pipeline",
    "pipeline_to_json",
    "pr",
    "pull_request",
    "push",
    "py",
    "python",
    "rust",
    "scratch",
    "sh",
    "target",
    "timeout",
    "ts",
    "ttl",
    "volume",
    "wait",
    "zig",
]
