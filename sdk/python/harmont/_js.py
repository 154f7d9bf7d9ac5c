"""The JavaScript/TypeScript preset: ``hm.js.project()`` (``hm.ts`` is the same).

Two choices: the runtime (``node``, ``bun``, ``deno``) and the package
manager (``npm``, ``pnpm``, ``yarn-classic``, ``yarn-berry``, ``bun``; deno
manages its own). Left open, both are detected from the project's files
(:mod:`harmont._detect`), defaulting to node with npm.

Chain: apt base → ``:<node|bun|deno>: install`` (cached forever) → the
package manager when the runtime does not bundle it (pnpm and yarn through
corepack, pinned to ``packageManager``'s version when there is one) →
``:<tag>: deps`` (the lockfile install, cached on the lockfile) → the
scripts, each forked off the deps step.
"""

from __future__ import annotations

from ._detect import detect
from ._record import Record, set_field
from ._toolchain import (
    advance_install,
    bun_install_cmd,
    deno_install_cmd,
    emit,
    make_install_chain,
    node_install_cmd,
)
from ._validation import is_digits, is_dotted_numbers, line_end, require_str
from .cache import CacheForever, CacheOnChange

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Literal, Self

    from ._step import Step
    from .cache import CachePolicy

    Runtime = Literal["node", "bun", "deno"]
    PackageManager = Literal["npm", "pnpm", "yarn-classic", "yarn-berry", "bun", "deno"]

_LOCKFILES: dict[str, str] = {
    "npm": "package-lock.json",
    "pnpm": "pnpm-lock.yaml",
    "yarn-classic": "yarn.lock",
    "yarn-berry": "yarn.lock",
    "bun": "bun.lock",
    "deno": "deno.lock",
}

_DEPS_CMD: dict[str, str] = {
    "npm": "npm ci",
    "pnpm": "pnpm install --frozen-lockfile",
    "yarn-classic": "yarn install --frozen-lockfile",
    "yarn-berry": "yarn install --immutable",
    "bun": "bun install --frozen-lockfile",
    "deno": "deno install",
}

_RUN_PREFIX: dict[str, str] = {
    "npm": "npm run",
    "pnpm": "pnpm run",
    "yarn-classic": "yarn run",
    "yarn-berry": "yarn run",
    "bun": "bun run",
    "deno": "deno task",
}


def _pm_bootstrap(pm: PackageManager, runtime: Runtime, version: str | None = None) -> str | None:
    """The command that brings ``pm`` onto the runtime, or ``None`` when it comes with it."""
    if pm in ("npm", "deno"):
        return None
    if pm == "bun":
        return None if runtime == "bun" else bun_install_cmd()
    if pm == "pnpm":
        if version is not None:
            return f"corepack enable pnpm && corepack install -g pnpm@{version}"
        return "corepack enable pnpm"
    # yarn: corepack's default is classic 1.x; a pinned version comes from packageManager.
    if version is not None:
        return f"corepack enable yarn && corepack install -g yarn@{version}"
    return "corepack enable"


def _validate_version(runtime: Runtime, version: str) -> None:
    text = line_end(require_str(version, "hm.js: version"))
    if runtime == "node":
        # ^[0-9]+(\.x)?$
        if not is_digits(text.removesuffix(".x")):
            raise ValueError(
                f"hm.js: invalid version {version!r}\n"
                '  → use a Node major version like "22" or "22.x"'
            )
    elif not is_dotted_numbers(text, 2, 3):
        raise ValueError(
            f'hm.js: invalid version {version!r}\n  → use a semver version like "1.2" or "1.2.0"'
        )


class JsProject(Record):
    """A JS/TS project with its dependencies installed: what ``hm.js.project()`` returns.

    ``installed`` is the deps step; ``run(script)`` forks a step off it.
    """

    __slots__ = ("path", "installed", "run_prefix", "tag")
    _fields = __slots__
    path: str
    installed: Step
    run_prefix: str
    tag: str

    def __init__(self, path: str, installed: Step, run_prefix: str, tag: str) -> None:
        set_field(self, "path", path)
        set_field(self, "installed", installed)
        set_field(self, "run_prefix", run_prefix)
        set_field(self, "tag", tag)

    def setup(
        self,
        cmd: str,
        *,
        cwd: str | None = None,
        label: str | None = None,
        cache: CachePolicy | None = None,
        env: dict[str, str] | None = None,
    ) -> Self:
        """A copy whose scripts run after ``cmd``."""
        return advance_install(self, cmd, cwd=cwd, label=label, cache=cache, env=env)

    def install(self) -> Step:
        """The deps step (a pipeline returning the project gets this leaf)."""
        return self.installed

    def run(self, script: str, **kw: Any) -> Step:
        """The package.json script (deno: task) ``script``, labelled ``:<tag>: <script>``."""
        cmd = f"cd {self.path} && {self.run_prefix} {script}"
        return emit(self.installed, cmd, f":{self.tag}: {script}", kw)


def _make_js(
    *,
    path: str = ".",
    pm: PackageManager | None = None,
    runtime: Runtime | None = None,
    version: str | None = None,
    image: str | None = None,
    base: Step | None = None,
) -> JsProject:
    detected = detect(path) if runtime is None and pm is None else None
    if runtime is None:
        runtime = detected.runtime if detected is not None and detected.runtime else "node"
    if version is not None:
        _validate_version(runtime, version)

    if runtime == "deno":
        if pm is not None:
            raise ValueError('hm.js: runtime="deno" manages its own dependencies — do not set pm')
        installed = make_install_chain(
            apt_packages=("curl", "ca-certificates", "unzip"),
            install_cmd=deno_install_cmd(version),
            install_cache=CacheForever(env_keys=()),
            lang_tag="deno",
            install_tag="install",
            image=image,
            base=base,
        )
        deps = installed.sh(
            f"cd {path} && {_DEPS_CMD['deno']}",
            label=":deno: deps",
            cache=CacheOnChange(paths=(f"{path}/{_LOCKFILES['deno']}",)),
        )
        return JsProject(path=path, installed=deps, run_prefix=_RUN_PREFIX["deno"], tag="deno")

    pm_version = detected.pm_version if detected is not None else None
    if pm is None:
        detected_pm = detected.pm if detected is not None else None
        pm = detected_pm if detected_pm is not None else ("bun" if runtime == "bun" else "npm")
    if pm == "deno":
        raise ValueError('hm.js: pm="deno" is not valid — use runtime="deno" instead')
    if runtime == "bun" and pm != "bun":
        raise ValueError('hm.js: runtime="bun" only supports pm="bun"')
    if pm not in _DEPS_CMD:
        # Harmont fails here with a KeyError.
        raise ValueError(
            f"hm.js: unknown pm {pm!r}\n  → use npm, pnpm, yarn-classic, yarn-berry or bun"
        )

    apt = ["curl", "ca-certificates"]
    if runtime == "bun" or pm == "bun":
        apt.append("unzip")  # bun's installer unpacks a zip
    tag = "bun" if runtime == "bun" else "node"
    installed = make_install_chain(
        apt_packages=tuple(apt),
        install_cmd=bun_install_cmd(version) if runtime == "bun" else node_install_cmd(version or "22"),
        install_cache=CacheForever(env_keys=()),
        lang_tag=tag,
        install_tag="install",
        image=image,
        base=base,
    )
    bootstrap = _pm_bootstrap(pm, runtime, pm_version)
    if bootstrap is not None:
        # A version pinned in package.json must be re-installed when package.json changes.
        installed = installed.sh(
            bootstrap,
            label=f":{tag}: {pm}",
            cache=CacheOnChange(paths=(f"{path}/package.json",))
            if pm_version is not None
            else CacheForever(env_keys=()),
        )
    deps = installed.sh(
        f"cd {path} && {_DEPS_CMD[pm]}",
        label=f":{tag}: deps",
        cache=CacheOnChange(paths=(f"{path}/{_LOCKFILES[pm]}",)),
    )
    return JsProject(path=path, installed=deps, run_prefix=_RUN_PREFIX[pm], tag=tag)


class _JsEntry:
    """``hm.js`` and ``hm.ts``: ``project()`` makes a :class:`JsProject`."""

    def project(
        self,
        *,
        path: str = ".",
        pm: PackageManager | None = None,
        runtime: Runtime | None = None,
        version: str | None = None,
        image: str | None = None,
        base: Step | None = None,
    ) -> JsProject:
        """The project at ``path``: ``runtime`` (default node, or detected), ``pm`` (default
        npm, bun with bun, or detected; never with deno), the runtime's ``version`` (Node
        major such as ``"22"``, Bun/Deno semver); ``image`` for the apt step, or ``base``
        to start from an existing step."""
        return _make_js(path=path, pm=pm, runtime=runtime, version=version, image=image, base=base)


js: _JsEntry = _JsEntry()
ts: _JsEntry = js
