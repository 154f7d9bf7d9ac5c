"""Rust: rustup's toolchain, ``cargo fetch`` on ``Cargo.lock``, cargo actions."""

from __future__ import annotations


TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Iterable

from .._step import Step
from ._base import SYSTEM_PATH, Project, Toolchain, base_step, check_version, dependency_step, install_step, joined

PACKAGES = ("build-essential", "ca-certificates", "curl", "git", "libssl-dev", "pkg-config")
ENV = {
    "CARGO_HOME": "/usr/local/cargo",
    "RUSTUP_HOME": "/usr/local/rustup",
    "PATH": f"/usr/local/cargo/bin:{SYSTEM_PATH}",
    "CARGO_TERM_COLOR": "never",
}


class RustProject(Project):
    def build(self) -> Step:
        return self.action("cargo build --workspace --all-targets", label="cargo build")

    def test(self) -> Step:
        return self.action("cargo test --workspace", label="cargo test")

    def doctest(self) -> Step:
        return self.action("cargo test --workspace --doc", label="cargo doctest")

    def clippy(self) -> Step:
        return self.action("cargo clippy --workspace --all-targets -- -D warnings", label="cargo clippy")

    def fmt(self) -> Step:
        return self.action("cargo fmt --all -- --check", label="cargo fmt")

    def doc(self) -> Step:
        return self.action("cargo doc --workspace --no-deps", label="cargo doc")

    def ci(self) -> list[Step]:
        return [self.fmt(), self.clippy(), self.build(), self.test(), self.doctest()]

    def defaults(self) -> list[Step]:
        return self.ci()


class RustToolchain(Toolchain):
    def project(self, path: str = ".") -> RustProject:
        deps = dependency_step(self.install, "cargo fetch", [joined(path, "Cargo.lock")], path, "cargo fetch", self.env)
        return RustProject(deps, path, self.env)


class Rust:
    """``hm.rust``: ``hm.rust.toolchain("1.83.0").project("crates/app")`` or ``hm.rust.project()``."""

    DEFAULT_VERSION = "stable"

    def toolchain(
        self,
        version: str = DEFAULT_VERSION,
        *,
        image: str | None = None,
        base: Step | None = None,
        packages: Iterable[str] = (),
    ) -> RustToolchain:
        version = check_version(version, "Rust")
        start = base_step(base, (*PACKAGES, *packages), image)
        cmd = (
            "curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --no-modify-path "
            f"--profile minimal --default-toolchain {version} --component clippy,rustfmt"
        )
        return RustToolchain(install_step(start, cmd, f"rust {version}", ENV), ENV)

    def project(
        self,
        path: str = ".",
        *,
        version: str = DEFAULT_VERSION,
        image: str | None = None,
        base: Step | None = None,
        packages: Iterable[str] = (),
    ) -> RustProject:
        return self.toolchain(version, image=image, base=base, packages=packages).project(path)


rust = Rust()
