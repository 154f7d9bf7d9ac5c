"""``@hm.target()``: named, memoised building blocks that pipelines and other targets use.

The decorator registers the function by name (:mod:`harmont._deps`) and
returns a zero-argument callable that evaluates it once — its parameters
filled in by name — and then returns the same value until the memo is
cleared, which every render does first.
"""

from __future__ import annotations

from ._deps import call_with_deps, clear_target_names, register_named_target, validate_target_signature

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, overload
else:

    def overload(fn: object) -> object:
        return fn


#: Each target function's value in the current render.
_TARGET_CACHE: dict[Callable[..., Any], Any] = {}

_WRAPPER_ASSIGNMENTS = ("__module__", "__name__", "__qualname__", "__annotations__", "__doc__")


def wraps(wrapper: Callable[..., Any], fn: Callable[..., Any]) -> None:
    """What ``functools.wraps`` does, without importing :mod:`functools`."""
    for attr in _WRAPPER_ASSIGNMENTS:
        try:
            value = getattr(fn, attr)
        except AttributeError:
            continue
        setattr(wrapper, attr, value)
    wrapper.__dict__.update(getattr(fn, "__dict__", {}))
    wrapper.__wrapped__ = fn  # type: ignore[attr-defined]


def clear_target_memo() -> None:
    """Forget the targets' values (not their names): the start of every render."""
    _TARGET_CACHE.clear()


def clear_target_cache() -> None:
    """Forget the targets' values and their names: a clean slate, for tests."""
    _TARGET_CACHE.clear()
    clear_target_names()


@overload
def target(fn: Callable[..., Any], /) -> Callable[[], Any]: ...


@overload
def target(
    fn: None = None, /, *, name: str | None = None
) -> Callable[[Callable[..., Any]], Callable[[], Any]]: ...


def target(fn: Callable[..., Any] | None = None, /, *, name: str | None = None) -> Any:
    """Make a function a target: ``@hm.target()`` (``name=`` defaults to the function's).

    Other targets and pipelines receive its value through a parameter of that
    name annotated ``hm.Target[...]``; calling the returned function gives the
    value too. Either way the function runs once per render. ``@hm.target``
    without parentheses works as well (an addition of ``hm``).
    """

    def decorator(fn: Callable[..., Any]) -> Callable[[], Any]:
        validate_target_signature(fn)
        target_name = name if name is not None else fn.__name__

        def wrapper() -> Any:
            if fn not in _TARGET_CACHE:
                _TARGET_CACHE[fn] = call_with_deps(fn)
            return _TARGET_CACHE[fn]

        wraps(wrapper, fn)
        register_named_target(target_name, wrapper)
        return wrapper

    if fn is not None:
        if not callable(fn):
            raise TypeError(
                f"hm.target: decorates a function, got {type(fn).__name__}\n"
                '  → use @hm.target() or @hm.target(name="...")'
            )
        return decorator(fn)
    return decorator
