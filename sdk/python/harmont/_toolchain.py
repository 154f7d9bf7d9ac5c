"""What the toolchain presets share: the apt base step, the install chain, ``setup()``.

A preset's chain starts from an apt step (``:<tag>: apt-base``, cached for a
day) in a scratch root, then its install step; with ``base=`` the chain
starts from that step instead and no apt step is emitted (the caller's base
provides the packages), which is how several toolchains share one base.
"""

from __future__ import annotations

from datetime import timedelta

from ._step import scratch
from .cache import CacheTTL

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Protocol, TypeVar

    from ._step import Step
    from .cache import CachePolicy

    class _HasInstalled(Protocol):
        @property
        def installed(self) -> Step: ...

        def _replace(self, **changes: object) -> object: ...

    _ProjectT = TypeVar("_ProjectT", bound=_HasInstalled)


#: How long an apt base step stays cached.
APT_TTL = timedelta(days=1)


def advance_install(
    project: _ProjectT,
    cmd: str,
    *,
    cwd: str | None = None,
    label: str | None = None,
    cache: CachePolicy | None = None,
    env: dict[str, str] | None = None,
) -> _ProjectT:
    """A copy of ``project`` whose install chain ends in one more step, ``cmd``: what every
    ``setup()`` does. The copy's actions fork from that step."""
    installed = project.installed.sh(cmd, cwd=cwd, label=label, cache=cache, env=env)
    return project._replace(installed=installed)  # type: ignore[return-value]


def apt_install_cmd(packages: tuple[str, ...]) -> str:
    """``apt-get update && apt-get install -y <packages>``."""
    return f"apt-get update && apt-get install -y {' '.join(packages)}"


def node_install_cmd(version: str) -> str:
    """Installs Node.js major ``version`` (``"22"`` or ``"22.x"``) from NodeSource."""
    major = version.removesuffix(".x")
    return (
        f"curl -fsSL https://deb.nodesource.com/setup_{major}.x | bash - && "
        "apt-get install -y nodejs"
    )


def bun_install_cmd(version: str | None = None) -> str:
    """Installs Bun (the latest, or ``version``) into ``/usr/local``."""
    version_arg = f' -s "bun-v{version}"' if version is not None else ""
    return f"curl -fsSL https://bun.sh/install | BUN_INSTALL=/usr/local bash{version_arg}"


def deno_install_cmd(version: str | None = None) -> str:
    """Installs Deno (the latest, or ``version``) and links it into ``/usr/local/bin``."""
    version_arg = f' -s "v{version}"' if version is not None else ""
    return (
        f"curl -fsSL https://deno.land/install.sh | sh{version_arg} && "
        "ln -sf $HOME/.deno/bin/deno /usr/local/bin/deno"
    )


def make_install_chain(
    *,
    apt_packages: tuple[str, ...],
    install_cmd: str,
    install_cache: CachePolicy,
    lang_tag: str,
    install_tag: str,
    image: str | None,
    base: Step | None,
) -> Step:
    """The install step (``:<lang_tag>: <install_tag>``), after an apt base step of
    ``apt_packages`` in ``image`` — or, given ``base``, right after ``base`` (then
    ``apt_packages`` and ``image`` are not used)."""
    if base is None:
        parent = scratch().sh(
            apt_install_cmd(apt_packages),
            label=f":{lang_tag}: apt-base",
            image=image,
            cache=CacheTTL(duration=APT_TTL),
        )
    else:
        parent = base
    return parent.sh(install_cmd, label=f":{lang_tag}: {install_tag}", cache=install_cache)


def apt_base(
    *,
    packages: tuple[str, ...],
    image: str | None = None,
    label: str = ":apt: base",
) -> Step:
    """A standalone apt step installing ``packages`` (cached for a day), to pass as
    ``base=`` to several toolchains so that they share it."""
    return scratch().sh(
        apt_install_cmd(packages),
        label=label,
        image=image,
        cache=CacheTTL(duration=APT_TTL),
    )


#: The keywords a bare action (``hm.go.build(...)``) hands to the action; the rest go
#: to the toolchain.
ACTION_KWARGS = frozenset(("cache", "env", "label", "key"))


def split_action_kwargs(kw: dict[str, Any], names: frozenset[str] = ACTION_KWARGS) -> dict[str, Any]:
    """Remove the action's keywords (``names``) from ``kw`` and return them."""
    return {k: kw.pop(k) for k in list(kw) if k in names}


def emit(parent: Step, cmd: str, default_label: str, kw: dict[str, Any]) -> Step:
    """``parent.sh(cmd, **kw)``, labelled ``default_label`` unless ``kw`` gives a label."""
    if kw.get("label") is None:
        kw["label"] = default_label
    return parent.sh(cmd, **kw)
