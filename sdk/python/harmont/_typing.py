"""Annotation markers for the parameters of targets and pipelines.

``hm.Target[T]`` is ``Annotated[T, <marker>]``: a parameter so annotated
receives the target of the same name, and type checkers see a ``T``. A bare
``hm.Target`` works too (any value). ``Annotated[hm.Step, hm.BaseImage("img")]``
makes the parameter a scratch root whose first command runs in ``img``.

``Target`` is built on first use: it needs :mod:`typing`, whose import costs
more than a small pipeline's whole evaluation, and most pipelines never
mention it.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Annotated, TypeVar


class _TargetMarker:
    """The type of :data:`_TARGET_MARKER`, the metadata ``hm.Target`` adds."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<hm.Target marker>"


_TARGET_MARKER = _TargetMarker()


class _BaseImageMarker:
    """What ``BaseImage(image)`` returns: metadata naming a scratch root's image."""

    __slots__ = ("image",)

    def __init__(self, image: str) -> None:
        self.image = image

    def __repr__(self) -> str:
        return f"<hm.BaseImage({self.image!r}) marker>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _BaseImageMarker) and self.image == other.image

    def __hash__(self) -> int:
        return hash(("_BaseImageMarker", self.image))


def BaseImage(image: str) -> _BaseImageMarker:  # noqa: N802 - reads as a type in annotations
    """Metadata for ``Annotated[hm.Step, hm.BaseImage("ubuntu:24.04")]``: the parameter
    receives a scratch root in that image. Raises ``TypeError`` unless ``image`` is a
    non-empty string."""
    if not isinstance(image, str) or not image:
        raise TypeError(
            'hm: BaseImage(...) takes a non-empty image string\n  → e.g. BaseImage("ubuntu-24.04")'
        )
    return _BaseImageMarker(image)


if TYPE_CHECKING:
    T = TypeVar("T")
    Target = Annotated[T, _TARGET_MARKER]
else:

    def __getattr__(name: str) -> object:
        if name in ("Target", "T"):
            from typing import Annotated, TypeVar

            T = TypeVar("T")
            globals().update(T=T, Target=Annotated[T, _TARGET_MARKER])
            return globals()[name]
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
