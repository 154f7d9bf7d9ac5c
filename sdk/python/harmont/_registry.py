"""Every pipeline that ``@hm.pipeline`` registered, in definition order."""

from __future__ import annotations

from ._record import Record, set_field

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    from ._volume import Volumes
    from .triggers import Trigger


class PipelineRegistration(Record):
    """One registered pipeline: its identity, triggers and settings, and the function
    (taking no arguments) that returns its leaves."""

    __slots__ = ("slug", "name", "triggers", "allow_manual", "env", "fn", "timeout", "network", "volumes")
    _fields = __slots__
    slug: str
    name: str
    triggers: tuple[Trigger, ...]
    allow_manual: bool
    env: dict[str, str] | None
    fn: Callable[[], object]
    timeout: str | int | None
    network: str | None
    volumes: Volumes | None

    def __init__(
        self,
        slug: str,
        name: str,
        triggers: tuple[Trigger, ...],
        allow_manual: bool,
        env: dict[str, str] | None,
        fn: Callable[[], object],
        timeout: str | int | None = None,
        network: str | None = None,
        volumes: Volumes | None = None,
    ) -> None:
        set_field(self, "slug", slug)
        set_field(self, "name", name)
        set_field(self, "triggers", triggers)
        set_field(self, "allow_manual", allow_manual)
        set_field(self, "env", env)
        set_field(self, "fn", fn)
        set_field(self, "timeout", timeout)
        set_field(self, "network", network)
        set_field(self, "volumes", volumes)


REGISTRATIONS: list[PipelineRegistration] = []


def register(reg: PipelineRegistration) -> None:
    """Append ``reg``; ``ValueError`` if its slug is taken."""
    if any(r.slug == reg.slug for r in REGISTRATIONS):
        raise ValueError(
            f"duplicate pipeline slug {reg.slug!r}\n  → each @hm.pipeline must have a unique slug"
        )
    REGISTRATIONS.append(reg)


def clear_registry() -> None:
    """Forget every registered pipeline (for tests)."""
    REGISTRATIONS.clear()
