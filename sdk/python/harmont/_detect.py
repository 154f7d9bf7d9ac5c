"""Which JavaScript runtime and package manager a project uses, read from its files.

``package.json`` decides first: ``engines`` (``bun``, ``deno`` or ``node``)
and ``packageManager`` (``pnpm@9``, ``yarn@4.1.0``: yarn 2 and later is
``yarn-berry``). Lockfiles fill in what it leaves open: ``bun.lock``/``bun.lockb``
(bun), ``pnpm-lock.yaml``, ``deno.lock`` (deno runtime), ``package-lock.json``
(npm), ``yarn.lock`` (yarn classic), in that order.
"""

from __future__ import annotations

from ._record import Record, set_field

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Literal

    Runtime = Literal["node", "bun", "deno"]
    Pm = Literal["npm", "pnpm", "yarn-classic", "yarn-berry", "bun"]


class DetectedToolchain(Record):
    """What detection found; ``None`` where it found nothing. ``pm_version`` comes from
    ``packageManager`` only."""

    __slots__ = ("runtime", "pm", "pm_version")
    _fields = __slots__
    runtime: Runtime | None
    pm: Pm | None
    pm_version: str | None

    def __init__(
        self, runtime: Runtime | None = None, pm: Pm | None = None, pm_version: str | None = None
    ) -> None:
        set_field(self, "runtime", runtime)
        set_field(self, "pm", pm)
        set_field(self, "pm_version", pm_version)


def detect_from_package_json(package_json: dict[str, Any]) -> DetectedToolchain:
    """What ``engines`` and ``packageManager`` of a parsed ``package.json`` say."""
    runtime: Runtime | None = None
    pm: Pm | None = None
    pm_version: str | None = None

    engines = package_json.get("engines")
    if isinstance(engines, dict):
        if "bun" in engines:
            runtime, pm = "bun", "bun"
        elif "deno" in engines:
            runtime = "deno"
        elif "node" in engines:
            runtime = "node"

    if pm is None:
        field = package_json.get("packageManager")
        if isinstance(field, str):
            parts = field.split("@")
            tool = parts[0]
            version = parts[1] if len(parts) > 1 else ""
            if tool in ("pnpm", "bun", "npm"):
                pm = tool  # type: ignore[assignment]
            elif tool == "yarn":
                try:
                    major = int(version.split(".")[0])
                except (ValueError, IndexError):
                    major = 1
                pm = "yarn-berry" if major >= 2 else "yarn-classic"
            if pm is not None and version:
                pm_version = version

    return DetectedToolchain(runtime=runtime, pm=pm, pm_version=pm_version)


_LOCKFILE_ORDER: tuple[tuple[tuple[str, ...], DetectedToolchain], ...] = (
    (("bun.lock", "bun.lockb"), DetectedToolchain(pm="bun", runtime="bun")),
    (("pnpm-lock.yaml",), DetectedToolchain(pm="pnpm")),
    (("deno.lock",), DetectedToolchain(runtime="deno")),
    (("package-lock.json",), DetectedToolchain(pm="npm")),
    (("yarn.lock",), DetectedToolchain(pm="yarn-classic")),
)


def detect_from_lockfiles(files: list[str]) -> DetectedToolchain:
    """What the first lockfile found among ``files`` (names in one directory) says."""
    present = set(files)
    for names, found in _LOCKFILE_ORDER:
        if any(name in present for name in names):
            return found
    return DetectedToolchain()


def detect(path: str) -> DetectedToolchain:
    """Detection for the project directory ``path``: ``package.json`` first, lockfiles
    for what it leaves open. Unreadable or missing files count as absent."""
    import json
    import os

    from_pkg = DetectedToolchain()
    try:
        with open(os.path.join(path, "package.json")) as f:
            package_json = json.load(f)
        # Harmont fails on a package.json that is not an object; it says nothing here.
        if isinstance(package_json, dict):
            from_pkg = detect_from_package_json(package_json)
    except (FileNotFoundError, json.JSONDecodeError, OSError):
        pass

    from_lock = DetectedToolchain()
    try:
        from_lock = detect_from_lockfiles(os.listdir(path))
    except OSError:
        pass

    return DetectedToolchain(
        runtime=from_pkg.runtime if from_pkg.runtime is not None else from_lock.runtime,
        pm=from_pkg.pm if from_pkg.pm is not None else from_lock.pm,
        pm_version=from_pkg.pm_version,
    )
