"""Dependency injection for ``@hm.target`` and ``@hm.pipeline`` functions.

Each parameter of such a function is filled in by its annotation:

- ``hm.Target[T]`` (or a bare ``hm.Target``): the target registered under the
  parameter's name, evaluated (once per render) — an error if there is none;
- ``Annotated[hm.Step, hm.BaseImage("img")]``: a scratch root in ``img``;
- anything else: the parameter's default, and an error if it has none.

``*args``, ``**kwargs`` and positional-only parameters are refused.

Parameters are read from the function's code object and string annotations
(``from __future__ import annotations``) are evaluated here, in the
function's globals, rather than through :mod:`inspect` and
``typing.get_type_hints``, whose imports would dominate a small pipeline's
evaluation. As with ``get_type_hints``, if any annotation of the function
fails to evaluate, none of them counts as a marker.
"""

from __future__ import annotations

from ._step import Step
from ._typing import _TARGET_MARKER, _BaseImageMarker

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any


#: Every target, by name: the memoised zero-argument callables ``@hm.target()`` returns.
_TARGETS_BY_NAME: dict[str, Callable[[], Any]] = {}
#: The names of the targets and pipelines being evaluated, outermost first.
_RESOLVING: list[str] = []

# Parameter kinds, numbered as inspect.Parameter's.
_POSITIONAL_ONLY, _POSITIONAL_OR_KEYWORD, _VAR_POSITIONAL, _KEYWORD_ONLY, _VAR_KEYWORD = range(5)
_EMPTY = object()
_CO_VARARGS = 0x04
_CO_VARKEYWORDS = 0x08


def register_named_target(name: str, fn: Callable[[], Any]) -> None:
    """Record target ``fn`` under ``name``; ``ValueError`` if the name is taken."""
    if name in _TARGETS_BY_NAME:
        raise ValueError(
            f"hm: duplicate target name {name!r}\n"
            '  → each @hm.target must have a unique name; pass name="..." to disambiguate'
        )
    _TARGETS_BY_NAME[name] = fn


def clear_target_names() -> None:
    """Forget every target name and any evaluation in progress."""
    _TARGETS_BY_NAME.clear()
    _RESOLVING.clear()


def _parameters(fn: Callable[..., Any]) -> list[tuple[str, int, Any]]:
    """``(name, kind, default or _EMPTY)`` for each parameter of ``fn``, in signature order."""
    target: Any = fn
    while hasattr(target, "__wrapped__") and not hasattr(target, "__signature__"):
        target = target.__wrapped__
    code = getattr(target, "__code__", None)
    if type(target).__name__ != "function" or hasattr(target, "__signature__") or code is None:
        return _parameters_from_inspect(fn)
    names = code.co_varnames
    n_pos, n_kw = code.co_argcount, code.co_kwonlyargcount
    defaults = target.__defaults__ or ()
    kwdefaults = target.__kwdefaults__ or {}
    first_default = n_pos - len(defaults)
    params: list[tuple[str, int, Any]] = []
    for i in range(n_pos):
        kind = _POSITIONAL_ONLY if i < code.co_posonlyargcount else _POSITIONAL_OR_KEYWORD
        params.append((names[i], kind, defaults[i - first_default] if i >= first_default else _EMPTY))
    rest = n_pos + n_kw
    if code.co_flags & _CO_VARARGS:
        params.append((names[rest], _VAR_POSITIONAL, _EMPTY))
        rest += 1
    for name in names[n_pos : n_pos + n_kw]:
        params.append((name, _KEYWORD_ONLY, kwdefaults.get(name, _EMPTY)))
    if code.co_flags & _CO_VARKEYWORDS:
        params.append((names[rest], _VAR_KEYWORD, _EMPTY))
    return params


def _parameters_from_inspect(fn: Callable[..., Any]) -> list[tuple[str, int, Any]]:
    # Anything but a plain function (a method, a partial, a callable object).
    import inspect

    return [
        (p.name, int(p.kind), _EMPTY if p.default is inspect.Parameter.empty else p.default)
        for p in inspect.signature(fn).parameters.values()
    ]


def _evaluate(text: str, namespace: dict[str, Any]) -> Any:
    """A string annotation's value, as ``typing.get_type_hints`` would compute it."""
    seen = set()
    value: Any = text
    while isinstance(value, str) and value not in seen:
        seen.add(value)
        value = eval(compile(value, "<string>", "eval"), namespace, namespace)  # noqa: S307
    if type(value) is tuple or type(value).__name__ == "_SpecialForm":
        raise TypeError(f"not a type: {value!r}")
    return value


def _hints(fn: Callable[..., Any]) -> dict[str, Any]:
    """``fn``'s annotations, evaluated; the raw ones if any fails to evaluate."""
    raw = getattr(fn, "__annotations__", None)
    if not raw:
        return {}
    unwrapped: Any = fn
    while hasattr(unwrapped, "__wrapped__"):
        unwrapped = unwrapped.__wrapped__
    namespace = getattr(unwrapped, "__globals__", {})
    hints: dict[str, Any] = {}
    try:
        for name, value in raw.items():
            if value is None:
                value = type(None)
            elif isinstance(value, str):
                value = _evaluate(value, namespace)
            hints[name] = value
    except Exception:  # noqa: BLE001 - as Harmont does when get_type_hints fails
        return dict(raw)
    return hints


def _marker_for(annotation: Any) -> object | None:
    """The ``hm.Target`` or ``hm.BaseImage`` marker in ``annotation``'s metadata, if any."""
    metadata: tuple[object, ...]
    if type(annotation).__name__ == "_AnnotatedAlias":
        metadata = annotation.__metadata__
    elif getattr(annotation, "__origin__", None) is not None and isinstance(
        getattr(annotation, "__args__", None), tuple
    ):
        metadata = annotation.__args__[1:]
    else:
        return None
    for meta in metadata:
        if meta is _TARGET_MARKER:
            return _TARGET_MARKER
        if isinstance(meta, _BaseImageMarker):
            return meta
    return None


def _param_kind_error(name: str, kind: int) -> str | None:
    if kind == _VAR_POSITIONAL:
        return (
            "hm: target functions cannot take *args\n"
            "  → declare each dependency as an explicit named parameter"
        )
    if kind == _VAR_KEYWORD:
        return (
            "hm: target functions cannot take **kwargs\n"
            "  → declare each dependency as an explicit named parameter"
        )
    if kind == _POSITIONAL_ONLY:
        return (
            f"hm: target functions cannot have positional-only parameters (got {name!r})\n"
            "  → remove the '/' marker; parameters must be name-resolvable"
        )
    return None


def validate_target_signature(fn: Callable[..., Any]) -> None:
    """Raise ``TypeError`` if a parameter of ``fn`` can never be filled in: ``*args``,
    ``**kwargs``, positional-only, or neither a marker nor a default."""
    params = _parameters(fn)
    if not params:
        return
    hints = _hints(fn)
    for name, kind, default in params:
        error = _param_kind_error(name, kind)
        if error is not None:
            raise TypeError(error)
        if _marker_for(hints.get(name)) is not None or default is not _EMPTY:
            continue
        raise TypeError(
            f"hm: parameter {name!r} has no marker and no default\n"
            '  → annotate with Target[T] (target dep) or BaseImage["..."] (scratch image), '
            "or give it a default"
        )


def resolve_deps(fn: Callable[..., Any]) -> dict[str, Any]:
    """The keyword arguments to call ``fn`` with: targets, scratch roots and defaults."""
    params = _parameters(fn)
    if not params:
        return {}
    hints = _hints(fn)
    kwargs: dict[str, Any] = {}
    for name, kind, default in params:
        error = _param_kind_error(name, kind)
        if error is not None:
            raise TypeError(error)
        marker = _marker_for(hints.get(name))
        if marker is _TARGET_MARKER:
            if name not in _TARGETS_BY_NAME:
                raise TypeError(
                    f"hm: target {name!r} not found\n"
                    "  → declare it with @hm.target() or rename the parameter to match "
                    "an existing target"
                )
            kwargs[name] = _TARGETS_BY_NAME[name]()
        elif isinstance(marker, _BaseImageMarker):
            kwargs[name] = Step(image=marker.image)
        elif default is not _EMPTY:
            kwargs[name] = default
        else:
            raise TypeError(
                f"hm: parameter {name!r} has no marker and no default\n"
                '  → annotate with Target[T] or BaseImage["..."], or give it a default'
            )
    return kwargs


def call_with_deps(fn: Callable[..., Any]) -> Any:
    """``fn`` called with its dependencies; ``RuntimeError`` on a dependency cycle."""
    name = fn.__name__
    if name in _RESOLVING:
        cycle = " → ".join([*_RESOLVING, name])
        raise RuntimeError(
            "hm: dependency cycle detected\n"
            f"  → {cycle}\n"
            "  fix: break the cycle, or extract a shared root target"
        )
    _RESOLVING.append(name)
    try:
        return fn(**resolve_deps(fn))
    finally:
        _RESOLVING.pop()
