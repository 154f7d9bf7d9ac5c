"""Go: the official release for the image's architecture, ``go mod download`` on ``go.sum``."""

from __future__ import annotations


TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Iterable

from .._step import Step
from ._base import SYSTEM_PATH, Project, Toolchain, base_step, check_version, dependency_step, install_step, joined

PACKAGES = ("build-essential", "ca-certificates", "curl", "git")
ENV = {"GOPATH": "/root/go", "PATH": f"/usr/local/go/bin:/root/go/bin:{SYSTEM_PATH}"}


class GoProject(Project):
    def build(self) -> Step:
        return self.action("go build ./...", label="go build")

    def test(self) -> Step:
        return self.action("go test ./...", label="go test")

    def vet(self) -> Step:
        return self.action("go vet ./...", label="go vet")

    def fmt(self) -> Step:
        return self.action('test -z "$(gofmt -l .)" || { gofmt -l .; exit 1; }', label="gofmt")

    def defaults(self) -> list[Step]:
        return [self.fmt(), self.vet(), self.build(), self.test()]


class GoToolchain(Toolchain):
    def project(self, path: str = ".") -> GoProject:
        deps = dependency_step(self.install, "go mod download", [joined(path, "go.sum")], path, "go mod download", self.env)
        return GoProject(deps, path, self.env)


class Go:
    """``hm.go``: ``hm.go.toolchain("1.23.4").project()`` or ``hm.go.project()``."""

    DEFAULT_VERSION = "1.23.4"

    def toolchain(
        self,
        version: str = DEFAULT_VERSION,
        *,
        image: str | None = None,
        base: Step | None = None,
        packages: Iterable[str] = (),
    ) -> GoToolchain:
        version = check_version(version, "Go")
        start = base_step(base, (*PACKAGES, *packages), image)
        # dpkg names the architecture as Go's downloads do (amd64, arm64).
        cmd = (
            f'curl -fsSL "https://go.dev/dl/go{version}.linux-$(dpkg --print-architecture).tar.gz" '
            "| tar -C /usr/local -xz"
        )
        return GoToolchain(install_step(start, cmd, f"go {version}", ENV), ENV)

    def project(
        self,
        path: str = ".",
        *,
        version: str = DEFAULT_VERSION,
        image: str | None = None,
        base: Step | None = None,
        packages: Iterable[str] = (),
    ) -> GoProject:
        return self.toolchain(version, image=image, base=base, packages=packages).project(path)


go = Go()
