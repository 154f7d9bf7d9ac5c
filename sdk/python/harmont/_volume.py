"""Cache volumes, an addition of ``hm``: named directories that ``hm`` keeps
across runs and mounts read-write into steps.

What a step writes into a volume (a compiler's cache, a package registry) is
there for the next run, but it is no part of the step's snapshot nor of any
cache key. A step's ``volumes=`` and a pipeline's map mount paths (absolute,
or relative to the workspace) to a volume's name or to :func:`volume`; the
IR carries them as ``volumes`` on the step or the pipeline's definition, and
only when given, so a Harmont file renders as before. ``hm`` checks names
and paths when it loads the pipeline.
"""

from __future__ import annotations

from ._record import Record, set_field

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Literal, Union

    #: How steps that run at the same time share a volume (see :class:`Volume`).
    Sharing = Literal["shared", "locked", "private"]
    #: A step's or a pipeline's ``volumes=``: mount path to a volume's name or :func:`volume`.
    #: A ``Mapping``, so that a ``dict[str, str]`` passes the type check too.
    Volumes = Mapping[str, Union[str, "Volume"]]

#: The values of a volume's ``sharing``.
SHARINGS = ("shared", "locked", "private")


class Volume(Record):
    """The cache volume ``name``, and how steps that run at the same time share it.

    ``"shared"``: every step uses it at once (for tools that lock what they write,
    such as cargo's registry); ``"locked"``: one step at a time, the others wait
    (for a cargo ``target``); ``"private"``: a step that finds it in use gets a
    directory of its own. Make one with :func:`volume`; a ``sharing`` other than
    these is a ``ValueError``.
    """

    __slots__ = ("name", "sharing")
    _fields = __slots__
    name: str
    sharing: Sharing

    def __init__(self, name: str, sharing: Sharing = "shared") -> None:
        if not isinstance(name, str):
            raise TypeError(f"hm.volume: the name must be a string, got {type(name).__name__}")
        if not isinstance(sharing, str):
            raise TypeError(f"hm.volume: sharing must be a string, got {type(sharing).__name__}")
        if sharing not in SHARINGS:
            raise ValueError(
                f"invalid volume sharing {sharing!r}\n"
                '  → use "shared" (the default), "locked" or "private"'
            )
        set_field(self, "name", name)
        set_field(self, "sharing", sharing)

    def to_ir(self) -> str | dict[str, str]:
        """The IR's form: the bare name when shared, else ``{"name", "sharing"}``."""
        if self.sharing == "shared":
            return self.name
        return {"name": self.name, "sharing": self.sharing}


def volume(name: str, sharing: Sharing = "shared") -> Volume:
    """The cache volume ``name``, for a step's or a pipeline's ``volumes=``.

    ``sharing`` is ``"shared"`` (the default), ``"locked"`` or ``"private"``
    (see :class:`Volume`), e.g. ``{"target": hm.volume("cargo-target", sharing="locked")}``.
    """
    return Volume(name, sharing)


def check_volumes(volumes: object, what: str) -> Volumes | None:
    """A copy of ``volumes`` as a dict (``None`` stays ``None``); ``TypeError``
    naming ``what`` unless it maps strings to names or :func:`volume` values."""
    from collections.abc import Mapping

    if volumes is None:
        return None
    if not isinstance(volumes, Mapping):
        raise TypeError(
            f"{what}: volumes must be a dict of mount paths to volume names, got {type(volumes).__name__}\n"
            '  → e.g. volumes={"target": "cargo-target"}'
        )
    for path, mount in volumes.items():
        if not isinstance(path, str):
            raise TypeError(f"{what}: a volume's mount path must be a string, got {type(path).__name__}")
        if not isinstance(mount, (str, Volume)):
            raise TypeError(
                f"{what}: the volume at {path!r} must be a name or hm.volume(...), got {type(mount).__name__}"
            )
    return dict(volumes)


def volumes_to_ir(volumes: Volumes) -> dict[str, str | dict[str, str]]:
    """``volumes`` in the IR's form."""
    return {path: mount if isinstance(mount, str) else mount.to_ir() for path, mount in volumes.items()}
