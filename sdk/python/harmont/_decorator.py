"""``@hm.pipeline(...)``: registering a function as a pipeline."""

from __future__ import annotations

from ._deps import call_with_deps, validate_target_signature
from ._pipeline import check_network
from ._registry import PipelineRegistration, register
from ._target import wraps
from ._volume import check_volumes
from ._validation import LOWER_ALNUM, line_end

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from ._volume import Volumes
    from .triggers import Trigger

_SLUG_TAIL = LOWER_ALNUM + "-"


def _is_slug(slug: str) -> bool:
    # ^[a-z][a-z0-9-]{0,63}$
    text = line_end(slug)
    return (
        1 <= len(text) <= 64
        and "a" <= text[0] <= "z"
        and all(ch in _SLUG_TAIL for ch in text[1:])
    )


def _validate_slug(slug: str) -> None:
    if not isinstance(slug, str):
        raise TypeError(f"a pipeline slug must be a string, got {type(slug).__name__}")
    if not _is_slug(slug):
        raise ValueError(
            f"invalid pipeline slug {slug!r}\n"
            "  → use lowercase letters, digits, and '-', start with a letter, max 64 chars"
        )


def pipeline(
    slug: str | None = None,
    *,
    name: str | None = None,
    triggers: tuple[Trigger, ...] | list[Trigger] = (),
    allow_manual: bool = True,
    env: dict[str, str] | None = None,
    timeout: str | int | None = None,
    network: str | None = None,
    volumes: Volumes | None = None,
) -> Callable[[Callable[..., Any]], Callable[[], Any]]:
    """A decorator registering a function as the pipeline ``slug`` (default: its name).

    The function returns its leaves: a step, a tuple or list of them (with
    ``hm.wait()`` barriers), or a toolchain object with default actions. Its
    parameters are filled in like a target's. ``name`` is shown in hosted CI
    (default: the slug); ``triggers`` and ``allow_manual`` say when hosted CI
    runs it; ``env`` applies to every step; ``timeout`` bounds the whole build;
    ``network="none"`` runs its steps without the network and ``volumes``
    mounts cache volumes into every step (additions of ``hm``).
    """
    check_network(network)
    volumes = check_volumes(volumes, "hm.pipeline")

    def decorator(fn: Callable[..., Any]) -> Callable[[], Any]:
        validate_target_signature(fn)
        resolved = slug if slug is not None else fn.__name__
        _validate_slug(resolved)
        for trigger in triggers:
            if not hasattr(trigger, "to_dict"):
                raise TypeError(
                    f"hm.pipeline: a trigger must be hm.push(...) or hm.pull_request(...), "
                    f"got {type(trigger).__name__}"
                )

        def wrapper() -> Any:
            return call_with_deps(fn)

        wraps(wrapper, fn)
        register(
            PipelineRegistration(
                slug=resolved,
                name=name if name is not None else resolved,
                triggers=tuple(triggers),
                allow_manual=allow_manual,
                env=env,
                fn=wrapper,
                timeout=timeout,
                network=network,
                volumes=volumes,
            )
        )
        return wrapper

    return decorator
