"""Zig: the official release for the machine's architecture, ``zig build`` actions."""

from __future__ import annotations


TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Iterable

from .._step import Step
from ._base import SYSTEM_PATH, Project, Toolchain, base_step, check_version, dependency_step, install_step, joined

PACKAGES = ("ca-certificates", "curl", "git", "xz-utils")
ENV = {"ZIG_GLOBAL_CACHE_DIR": "/root/.cache/zig", "PATH": f"/usr/local/zig:{SYSTEM_PATH}"}


class ZigProject(Project):
    def build(self) -> Step:
        return self.action("zig build", label="zig build")

    def test(self) -> Step:
        return self.action("zig build test", label="zig build test")

    def fmt(self) -> Step:
        return self.action("zig fmt --check .", label="zig fmt")

    def defaults(self) -> list[Step]:
        return [self.fmt(), self.build(), self.test()]


class ZigToolchain(Toolchain):
    def project(self, path: str = ".") -> ZigProject:
        # `zig build --fetch` fills the package cache from build.zig.zon.
        cmd = "if [ -f build.zig.zon ]; then zig build --fetch; fi"
        deps = dependency_step(self.install, cmd, [joined(path, "build.zig.zon")], path, "zig fetch", self.env)
        return ZigProject(deps, path, self.env)


class Zig:
    """``hm.zig``: ``hm.zig.toolchain("0.14.1").project()`` or ``hm.zig.project()``."""

    DEFAULT_VERSION = "0.14.1"

    def toolchain(
        self,
        version: str = DEFAULT_VERSION,
        *,
        image: str | None = None,
        base: Step | None = None,
        packages: Iterable[str] = (),
    ) -> ZigToolchain:
        version = check_version(version, "Zig")
        start = base_step(base, (*PACKAGES, *packages), image)
        # Zig names its downloads by `uname -m` (x86_64, aarch64): architecture first since
        # 0.14.1, operating system first before.
        name = f"zig-$(uname -m)-linux-{version}" if _since(version, (0, 14, 1)) else f"zig-linux-$(uname -m)-{version}"
        cmd = (
            "mkdir -p /usr/local/zig && "
            f'curl -fsSL "https://ziglang.org/download/{version}/{name}.tar.xz" '
            "| tar -C /usr/local/zig --strip-components=1 -xJ"
        )
        return ZigToolchain(install_step(start, cmd, f"zig {version}", ENV), ENV)

    def project(
        self,
        path: str = ".",
        *,
        version: str = DEFAULT_VERSION,
        image: str | None = None,
        base: Step | None = None,
        packages: Iterable[str] = (),
    ) -> ZigProject:
        return self.toolchain(version, image=image, base=base, packages=packages).project(path)


def _since(version: str, first: tuple[int, ...]) -> bool:
    """Whether ``version`` (``"0.13.0"``) is ``first`` or later; anything unparsable counts as
    later."""
    try:
        return tuple(int(part) for part in version.split(".")) >= first
    except ValueError:
        return True


zig = Zig()
