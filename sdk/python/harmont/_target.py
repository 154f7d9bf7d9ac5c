"""Targets: values computed once per render and injected by parameter name."""

from __future__ import annotations

from ._errors import HarmontError, where
from ._step import scratch

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable, TypeVar

    T = TypeVar("T")


class _TargetMarker:
    def __repr__(self) -> str:
        return "hm.Target"


_TARGET = _TargetMarker()


class Target:
    """``hm.Target[T]``: a parameter annotated so receives the target of the same name."""

    def __class_getitem__(cls, item: Any) -> Any:
        from typing import Annotated

        return Annotated[item, _TARGET]


class BaseImage:
    """``Annotated[hm.Step, hm.BaseImage("img")]``: a parameter annotated so receives ``hm.scratch("img")``."""

    __slots__ = ("image",)

    def __init__(self, image: str) -> None:
        if not isinstance(image, str) or not image:
            raise HarmontError(f"hm.BaseImage takes an image name, not {image!r}")
        self.image = image

    def __eq__(self, other: object) -> bool:
        return isinstance(other, BaseImage) and other.image == self.image

    def __hash__(self) -> int:
        return hash((BaseImage, self.image))

    def __repr__(self) -> str:
        return f"hm.BaseImage({self.image!r})"


class TargetDef:
    """A target as ``@hm.target`` recorded it."""

    def __init__(self, name: str, fn: Callable[..., Any]) -> None:
        self.name = name
        self.fn = fn


#: Every target, by name, in definition order.
TARGETS: dict[str, TargetDef] = {}


def target(name: Any = None) -> Any:
    """Mark a function as a target: ``@hm.target`` or ``@hm.target(name="x")``."""

    def register(fn: Callable[..., T]) -> Callable[..., T]:
        if not callable(fn):
            raise HarmontError(f"@hm.target decorates a function, not {fn!r}")
        target_name = name if isinstance(name, str) else fn.__name__
        if not target_name:
            raise HarmontError("a target's name must not be empty")
        if target_name in TARGETS:
            raise HarmontError(f"duplicate target `{target_name}` (also defined at {where(TARGETS[target_name].fn)})")
        TARGETS[target_name] = TargetDef(target_name, fn)
        return fn

    if callable(name) and not isinstance(name, str):
        fn, name = name, None
        return register(fn)
    if name is not None and not isinstance(name, str):
        raise HarmontError(f"a target's name must be a string, not {name!r}")
    return register


class Render:
    """One evaluation: every target is computed at most once."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}
        self.resolving: list[str] = []

    def target(self, name: str) -> Any:
        if name in self.values:
            return self.values[name]
        if name in self.resolving:
            cycle = self.resolving[self.resolving.index(name):] + [name]
            raise HarmontError(f"target cycle: {' -> '.join(cycle)}")
        if name not in TARGETS:
            known = ", ".join(sorted(TARGETS)) or "none"
            raise HarmontError(f"unknown target `{name}` (targets: {known})")
        self.resolving.append(name)
        try:
            value = self.call(TARGETS[name].fn, f"target `{name}`")
        finally:
            self.resolving.pop()
        self.values[name] = value
        return value

    def call(self, fn: Callable[..., Any], what: str) -> Any:
        """Calls ``fn`` with its targets and base images injected."""
        params = _parameters(fn)
        if not params:
            return fn()
        import typing

        try:
            hints = typing.get_type_hints(fn, include_extras=True)
        except Exception as err:  # an annotation that does not evaluate
            raise HarmontError(f"{what}: cannot read its parameter annotations: {err}") from err
        kwargs: dict[str, Any] = {}
        for param_name, required in params:
            metadata = getattr(hints.get(param_name), "__metadata__", ())
            images = [m for m in metadata if isinstance(m, BaseImage)]
            if any(m is _TARGET for m in metadata):
                kwargs[param_name] = self.target(param_name)
            elif images:
                kwargs[param_name] = scratch(images[0].image)
            elif required:
                raise HarmontError(
                    f"{what}: parameter `{param_name}` is neither `hm.Target[...]` nor "
                    "`Annotated[hm.Step, hm.BaseImage(...)]`"
                )
        return fn(**kwargs)


def _parameters(fn: Callable[..., Any]) -> list[tuple[str, bool]]:
    """The parameters a pipeline or target function can take by name, and whether each is
    required."""
    code = getattr(fn, "__code__", None)
    if code is None:  # a callable object: ask inspect
        import inspect

        return [
            (p.name, p.default is inspect.Parameter.empty)
            for p in inspect.signature(fn).parameters.values()
            if p.kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
        ]
    positional = code.co_varnames[: code.co_argcount]
    keyword = code.co_varnames[code.co_argcount : code.co_argcount + code.co_kwonlyargcount]
    defaults = getattr(fn, "__defaults__", None) or ()
    kwdefaults = getattr(fn, "__kwdefaults__", None) or {}
    first_default = len(positional) - len(defaults)
    params = [(name, i < first_default) for i, name in enumerate(positional)]
    params += [(name, name not in kwdefaults) for name in keyword]
    return params
