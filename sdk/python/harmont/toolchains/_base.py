"""What every toolchain preset shares: the apt base, and projects whose actions fork off their
dependency (or setup) step."""

from __future__ import annotations

from collections.abc import Mapping

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Iterable

from .._cache import CachePolicy, forever, on_change, ttl
from .._errors import HarmontError
from .._step import Step, scratch

#: ``PATH`` of the images presets target (Debian and Ubuntu).
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
#: The apt base is refreshed once a day.
APT_BASE_TTL = 86400

_apt_bases: dict[tuple[tuple[str, ...], str | None], Step] = {}


def apt_base(packages: Iterable[str], image: str | None = None) -> Step:
    """One step installing ``packages`` with apt, cached for a day; the same packages on the same
    image give the same step, so presets and pipelines share it."""
    if isinstance(packages, str):
        packages = packages.split()
    names = sorted(set(packages))
    for name in names:
        if not isinstance(name, str) or not name or name.startswith("-"):
            raise HarmontError(f"apt package names must be non-empty strings, not {name!r}")
    memo = (tuple(names), image)
    if memo not in _apt_bases:
        install = f" && apt-get install -y --no-install-recommends {' '.join(names)}" if names else ""
        cmd = f"apt-get update{install} && rm -rf /var/lib/apt/lists/*"
        _apt_bases[memo] = scratch(image).sh(cmd, label="apt base", cache=ttl(APT_BASE_TTL))
    return _apt_bases[memo]


def joined(path: str, name: str) -> str:
    """``name`` inside the project directory ``path``."""
    return name if path in (".", "./", "") else f"{path.rstrip('/')}/{name}"


class Project:
    """A project of a toolchain: actions fork off its dependency step, or off the last
    :meth:`setup` step. Returned from a pipeline, it contributes :meth:`defaults`."""

    #: Environment every step of the preset runs with.
    env: Mapping[str, str] = {}

    def __init__(self, start: Step, path: str, env: Mapping[str, str]) -> None:
        if not isinstance(path, str) or not path:
            raise HarmontError(f"a project's path must be a non-empty string, not {path!r}")
        self.start = start
        self.path = path
        self.env = dict(env)

    def _cwd(self) -> str | None:
        return None if self.path in (".", "./") else self.path

    def _derive(self, start: Step) -> "Project":
        clone = object.__new__(type(self))
        clone.__dict__.update(self.__dict__)
        clone.start = start
        return clone

    def setup(
        self,
        cmd: str,
        *,
        label: str | None = None,
        cache: CachePolicy | None = None,
        env: Mapping[str, str] | None = None,
    ) -> "Project":
        """A project whose later actions fork off a preparation step running ``cmd``."""
        step = self.start.sh(cmd, cwd=self._cwd(), label=label, cache=cache, env={**self.env, **(env or {})})
        return self._derive(step)

    def action(self, cmd: str, *, label: str | None = None, env: Mapping[str, str] | None = None) -> Step:
        """A step running ``cmd`` in the project, forked off its dependency or setup step."""
        return self.start.sh(cmd, cwd=self._cwd(), label=label or cmd, env={**self.env, **(env or {})})

    def defaults(self) -> list[Step]:
        raise NotImplementedError

    def _hm_actions(self) -> list[Step]:
        return self.defaults()


class Toolchain:
    """An installed toolchain: the apt base, then an install step cached forever."""

    def __init__(self, install: Step, env: Mapping[str, str]) -> None:
        self.install = install
        self.env = dict(env)


def install_step(base: Step, cmd: str, label: str, env: Mapping[str, str]) -> Step:
    return base.sh(cmd, label=label, cache=forever(), env=dict(env))


def dependency_step(start: Step, cmd: str, lockfiles: list[str], path: str, label: str, env: Mapping[str, str]) -> Step:
    cwd = None if path in (".", "./") else path
    return start.sh(cmd, cwd=cwd, label=label, cache=on_change(*lockfiles), env=dict(env))


def base_step(base: Step | None, packages: Iterable[str], image: str | None) -> Step:
    if base is not None:
        if not isinstance(base, Step):
            raise HarmontError(f"base must be a step such as hm.apt_base([...]), not {base!r}")
        return base
    return apt_base(packages, image)


def check_version(version: Any, what: str) -> str:
    if not isinstance(version, str) or not version or any(c.isspace() or c in "'\"$`;&|" for c in version):
        raise HarmontError(f"{what} version must be a plain version string, not {version!r}")
    return version
