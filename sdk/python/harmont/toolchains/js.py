"""JavaScript and TypeScript: node, bun or deno, with npm, pnpm, yarn or bun."""

from __future__ import annotations


TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Iterable

from .._errors import HarmontError
from .._step import Step
from ._base import SYSTEM_PATH, Project, Toolchain, base_step, check_version, dependency_step, install_step, joined

RUNTIMES = ("node", "bun", "deno")
MANAGERS = ("npm", "pnpm", "yarn", "bun")

# How each package manager installs from its lock file, runs a script, and
# which lock files it reads.
INSTALL = {
    "npm": ("npm ci", ["package-lock.json"]),
    "pnpm": ("pnpm install --frozen-lockfile", ["pnpm-lock.yaml"]),
    "yarn": ("yarn install --immutable", ["yarn.lock"]),
    "bun": ("bun install --frozen-lockfile", ["bun.lock", "bun.lockb"]),
    "deno": ("deno install", ["deno.lock"]),
}
RUN = {"npm": "npm run", "pnpm": "pnpm run", "yarn": "yarn run", "bun": "bun run", "deno": "deno task"}


class JsProject(Project):
    def __init__(self, start: Step, path: str, env: dict[str, str], manager: str, deps: Step) -> None:
        super().__init__(start, path, env)
        self.manager = manager
        self.deps = deps

    def install(self) -> Step:
        """The dependency step itself."""
        return self.deps

    def run(self, script: str) -> Step:
        """``npm run SCRIPT`` (or the package manager's equivalent)."""
        if not isinstance(script, str) or not script or any(c.isspace() for c in script):
            raise HarmontError(f"a script name must be a single word, not {script!r}")
        return self.action(f"{RUN[self.manager]} {script}", label=f"{self.manager} {script}")

    def defaults(self) -> list[Step]:
        return [self.run("test")]


class JsToolchain(Toolchain):
    def __init__(self, install: Step, env: dict[str, str], manager: str) -> None:
        super().__init__(install, env)
        self.manager = manager

    def project(self, path: str = ".") -> JsProject:
        cmd, locks = INSTALL[self.manager]
        deps = dependency_step(self.install, cmd, [joined(path, lock) for lock in locks], path, cmd, self.env)
        return JsProject(deps, path, self.env, self.manager, deps)


class Js:
    """``hm.js`` / ``hm.ts``: ``hm.js.project(runtime="node", version="22", package_manager="pnpm")``."""

    DEFAULT_VERSIONS = {"node": "22", "bun": "latest", "deno": "latest"}

    def toolchain(
        self,
        runtime: str = "node",
        version: str | None = None,
        *,
        package_manager: str | None = None,
        image: str | None = None,
        base: Step | None = None,
        packages: Iterable[str] = (),
    ) -> JsToolchain:
        if runtime not in RUNTIMES:
            raise HarmontError(f"unknown JavaScript runtime `{runtime}` (use one of {', '.join(RUNTIMES)})")
        version = check_version(version or self.DEFAULT_VERSIONS[runtime], runtime)
        manager = package_manager or {"node": "npm", "bun": "bun", "deno": "deno"}[runtime]
        allowed = {"node": ("npm", "pnpm", "yarn"), "bun": ("bun",), "deno": ("deno",)}[runtime]
        if manager not in allowed:
            raise HarmontError(f"package manager `{manager}` does not go with {runtime} (use {', '.join(allowed)})")
        env = {"PATH": SYSTEM_PATH}
        base_packages = ["ca-certificates", "curl", "git"]
        if runtime == "node":
            # NodeSource's repository serves every architecture Debian has.
            cmd = (
                f"curl -fsSL https://deb.nodesource.com/setup_{version}.x | bash -"
                " && apt-get install -y nodejs && rm -rf /var/lib/apt/lists/*"
            )
            if manager in ("pnpm", "yarn"):
                cmd += f" && corepack enable {manager}"
        elif runtime == "bun":
            base_packages.append("unzip")
            env = {"BUN_INSTALL": "/usr/local/bun", "PATH": f"/usr/local/bun/bin:{SYSTEM_PATH}"}
            tag = "" if version == "latest" else f" -s bun-v{version}"
            cmd = f"curl -fsSL https://bun.sh/install | bash{tag}"
        else:
            base_packages.append("unzip")
            env = {"DENO_INSTALL": "/usr/local/deno", "PATH": f"/usr/local/deno/bin:{SYSTEM_PATH}"}
            # The release archive for the machine's architecture (x86_64, aarch64); the
            # install script may stop to ask about shell profiles.
            release = "latest/download" if version == "latest" else f"download/v{version}"
            cmd = (
                "mkdir -p /usr/local/deno/bin && curl -fsSL -o /tmp/deno.zip "
                f'"https://github.com/denoland/deno/releases/{release}/deno-$(uname -m)-unknown-linux-gnu.zip"'
                " && unzip -o -q /tmp/deno.zip -d /usr/local/deno/bin && rm /tmp/deno.zip"
            )
        start = base_step(base, (*base_packages, *packages), image)
        return JsToolchain(install_step(start, cmd, f"{runtime} {version}", env), env, manager)

    def project(
        self,
        path: str = ".",
        *,
        runtime: str = "node",
        version: str | None = None,
        package_manager: str | None = None,
        image: str | None = None,
        base: Step | None = None,
        packages: Iterable[str] = (),
    ) -> JsProject:
        toolchain = self.toolchain(
            runtime, version, package_manager=package_manager, image=image, base=base, packages=packages
        )
        return toolchain.project(path)


js = Js()
ts = js
