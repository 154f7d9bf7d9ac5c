"""Elixir: Erlang/OTP from the image's packages, the Elixir release built for that OTP (BEAM files
run on every architecture), Hex and rebar, ``mix deps.get`` on ``mix.lock``."""

from __future__ import annotations


TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Iterable

from .._step import Step
from ._base import SYSTEM_PATH, Project, Toolchain, base_step, check_version, dependency_step, install_step, joined

PACKAGES = ("ca-certificates", "curl", "erlang-dev", "erlang-nox", "erlang-xmerl", "git", "unzip")
ENV = {
    "MIX_HOME": "/root/.mix",
    "HEX_HOME": "/root/.hex",
    "MIX_ENV": "test",
    "LANG": "C.UTF-8",
    "PATH": f"/usr/local/elixir/bin:{SYSTEM_PATH}",
}


class ElixirProject(Project):
    def compile(self) -> Step:
        return self.action("mix compile --warnings-as-errors", label="mix compile")

    def test(self) -> Step:
        return self.action("mix test", label="mix test")

    def format(self) -> Step:
        return self.action("mix format --check-formatted", label="mix format")

    def credo(self) -> Step:
        return self.action("mix credo --strict", label="mix credo")

    def dialyzer(self) -> Step:
        return self.action("mix dialyzer", label="mix dialyzer")

    def defaults(self) -> list[Step]:
        return [self.format(), self.compile(), self.test()]


class ElixirToolchain(Toolchain):
    def project(self, path: str = ".") -> ElixirProject:
        cmd = "mix deps.get && mix deps.compile"
        deps = dependency_step(self.install, cmd, [joined(path, "mix.lock")], path, "mix deps.get", self.env)
        return ElixirProject(deps, path, self.env)


class Elixir:
    """``hm.elixir``: ``hm.elixir.toolchain("1.17.3").project()`` or ``hm.elixir.project()``."""

    DEFAULT_VERSION = "1.17.3"

    def toolchain(
        self,
        version: str = DEFAULT_VERSION,
        *,
        image: str | None = None,
        base: Step | None = None,
        packages: Iterable[str] = (),
    ) -> ElixirToolchain:
        version = check_version(version, "Elixir")
        start = base_step(base, (*PACKAGES, *packages), image)
        cmd = (
            "OTP=$(erl -noshell -eval 'io:put_chars(erlang:system_info(otp_release)), halt().')"
            f' && curl -fsSL -o /tmp/elixir.zip "https://github.com/elixir-lang/elixir/releases/download/v{version}/'
            'elixir-otp-$OTP.zip"'
            " && unzip -q /tmp/elixir.zip -d /usr/local/elixir && rm /tmp/elixir.zip"
            " && mix local.hex --force && mix local.rebar --force"
        )
        return ElixirToolchain(install_step(start, cmd, f"elixir {version}", ENV), ENV)

    def project(
        self,
        path: str = ".",
        *,
        version: str = DEFAULT_VERSION,
        image: str | None = None,
        base: Step | None = None,
        packages: Iterable[str] = (),
    ) -> ElixirProject:
        return self.toolchain(version, image=image, base=base, packages=packages).project(path)


elixir = Elixir()
