"""The Zig preset: ``hm.zig()`` (a toolchain), ``hm.zig(path=...)`` (a project), bare actions.

Chain: apt base (curl, ca-certificates, xz-utils) → ``:zig: install`` (the
release tarball into ``/usr/local/zig``, cached forever) → the actions.
Projects made from one toolchain (``tc.project("lib-a")``) share its
install step.
"""

from __future__ import annotations

from ._record import Record, set_field
from ._toolchain import advance_install, emit, make_install_chain, split_action_kwargs
from ._validation import is_dotted_numbers, line_end, require_str
from .cache import CacheForever

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Self, overload

    from ._step import Step
    from .cache import CachePolicy
else:

    def overload(fn: object) -> object:
        return fn


APT_PACKAGES = ("curl", "ca-certificates", "xz-utils")

# From 0.14.1 on, release tarballs are named zig-<arch>-<os>-<version>.
_NEW_URL_FORMAT_VERSION = (0, 14, 1)


def _parse_version(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in version.split("."))


def _zig_install_cmd(version: str) -> str:
    if _parse_version(version) >= _NEW_URL_FORMAT_VERSION:
        tarball = f"zig-x86_64-linux-{version}.tar.xz"
    else:
        tarball = f"zig-linux-x86_64-{version}.tar.xz"
    return (
        f"curl -fsSL https://ziglang.org/download/{version}/{tarball} -o /tmp/zig.tar.xz && "
        "rm -rf /usr/local/zig && mkdir -p /usr/local/zig && "
        "tar -xJf /tmp/zig.tar.xz -C /usr/local/zig --strip-components=1 && "
        "ln -sf /usr/local/zig/zig /usr/local/bin/zig && zig version"
    )


class ZigProject(Record):
    """The Zig project at ``path``. Actions (``build``, ``test``, ``fmt``, labelled
    ``:zig: <path> <action>``) fork off ``installed``."""

    __slots__ = ("path", "installed")
    _fields = __slots__
    path: str
    installed: Step

    def __init__(self, path: str, installed: Step) -> None:
        set_field(self, "path", path)
        set_field(self, "installed", installed)

    def setup(
        self,
        cmd: str,
        *,
        cwd: str | None = None,
        label: str | None = None,
        cache: CachePolicy | None = None,
        env: dict[str, str] | None = None,
    ) -> Self:
        """A copy whose actions run after ``cmd``."""
        return advance_install(self, cmd, cwd=cwd, label=label, cache=cache, env=env)

    def _emit(self, cmd: str, default_label: str, **kw: Any) -> Step:
        return emit(self.installed, cmd, default_label, kw)

    def build(self, **kw: Any) -> Step:
        """``zig build``"""
        return self._emit(f"cd {self.path} && zig build", f":zig: {self.path} build", **kw)

    def test(self, **kw: Any) -> Step:
        """``zig build test``"""
        return self._emit(f"cd {self.path} && zig build test", f":zig: {self.path} test", **kw)

    def fmt(self, **kw: Any) -> Step:
        """``zig fmt --check .``"""
        return self._emit(f"cd {self.path} && zig fmt --check .", f":zig: {self.path} fmt", **kw)


class ZigToolchain(Record):
    """Zig installed, for several projects: what ``hm.zig()`` without ``path`` returns."""

    __slots__ = ("version", "installed")
    _fields = __slots__
    version: str
    installed: Step

    def __init__(self, version: str, installed: Step) -> None:
        set_field(self, "version", version)
        set_field(self, "installed", installed)

    def setup(
        self,
        cmd: str,
        *,
        cwd: str | None = None,
        label: str | None = None,
        cache: CachePolicy | None = None,
        env: dict[str, str] | None = None,
    ) -> Self:
        """A copy whose projects run after ``cmd``."""
        return advance_install(self, cmd, cwd=cwd, label=label, cache=cache, env=env)

    def project(self, path: str = ".") -> ZigProject:
        """The project at ``path``, on this toolchain's install step."""
        return ZigProject(path=path, installed=self.installed)


def _make_toolchain(*, version: str, image: str | None, base: Step | None) -> ZigToolchain:
    # ^[0-9]+\.[0-9]+\.[0-9]+$
    if not is_dotted_numbers(line_end(require_str(version, "hm.zig: version")), 3, 3):
        raise ValueError(f'hm.zig: invalid version {version!r}\n  → use a Zig version like "0.14.1"')
    installed = make_install_chain(
        apt_packages=APT_PACKAGES,
        install_cmd=_zig_install_cmd(version),
        install_cache=CacheForever(env_keys=()),
        lang_tag="zig",
        install_tag="install",
        image=image,
        base=base,
    )
    return ZigToolchain(version=version, installed=installed)


class ZigEntry:
    """``hm.zig``: a :class:`ZigToolchain`, a :class:`ZigProject` when given ``path``, or a
    bare action (``hm.zig.test(path="lib")``; ``cache``, ``env``, ``label`` and ``key`` go
    to the step, the rest to ``hm.zig()``, ``path`` defaulting to ``.``)."""

    @overload
    def __call__(
        self, *, version: str = ..., image: str | None = ..., base: Step | None = ...
    ) -> ZigToolchain: ...

    @overload
    def __call__(
        self, *, path: str, version: str = ..., image: str | None = ..., base: Step | None = ...
    ) -> ZigProject: ...

    def __call__(
        self,
        *,
        path: str | None = None,
        version: str = "0.14.1",
        image: str | None = None,
        base: Step | None = None,
    ) -> ZigToolchain | ZigProject:
        """Zig ``version`` (``MAJOR.MINOR.PATCH``); the project at ``path`` if given, else
        the toolchain. ``image`` for the apt step, or ``base`` to start from an existing step."""
        toolchain = _make_toolchain(version=version, image=image, base=base)
        return toolchain if path is None else toolchain.project(path)

    def _project(self, **kw: Any) -> ZigProject:
        project = self(path=kw.pop("path", "."), **kw)
        assert isinstance(project, ZigProject)
        return project

    def build(self, **kw: Any) -> Step:
        action = split_action_kwargs(kw)
        return self._project(**kw).build(**action)

    def test(self, **kw: Any) -> Step:
        action = split_action_kwargs(kw)
        return self._project(**kw).test(**action)

    def fmt(self, **kw: Any) -> Step:
        action = split_action_kwargs(kw)
        return self._project(**kw).fmt(**action)


zig: ZigEntry = ZigEntry()
