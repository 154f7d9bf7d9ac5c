"""Type aliases for annotating pipeline code.

``Pipeline`` (what a pipeline function returns: a step or a tuple of leaves)
is a ``typing.Union``, built on first use so that evaluating a pipeline
does not import :mod:`typing` unless the pipeline mentions it.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Union

    from ._step import Step

#: A step's or a pipeline's environment.
EnvVars = dict[str, str]

if TYPE_CHECKING:
    Pipeline = Union[Step, tuple[Step, ...]]
else:

    def __getattr__(name: str) -> object:
        if name == "Pipeline":
            from typing import Union

            globals()["Pipeline"] = Union["Step", "tuple[Step, ...]"]
            return globals()["Pipeline"]
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
