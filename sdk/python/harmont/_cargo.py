"""Cargo's arguments for the Rust preset, from structured options.

Arguments come in a fixed order: packages (``-p``) or ``--workspace`` with
its ``--exclude``\\s, ``--all-targets``, features (``--all-features``, or
``--no-default-features`` and ``--features a,b``), ``--target``,
``--profile`` or ``--release``, ``--locked``, then ``flags`` verbatim. Every
value given (names, the joined feature list, triple, profile) is quoted for
the shell; ``flags`` are not, being cargo arguments already.
"""

from __future__ import annotations

from ._record import Record, set_field

_SHELL_SAFE = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_@%+=:,./-")


def quote(s: str) -> str:
    """``s`` quoted for a POSIX shell, as ``shlex.quote`` does (left bare when safe)."""
    if not s:
        return "''"
    if all(ch in _SHELL_SAFE for ch in s):
        return s
    return "'" + s.replace("'", "'\"'\"'") + "'"


class CargoOpts(Record):
    """The cargo options an action takes (see the module for how each is written)."""

    __slots__ = (
        "workspace",
        "packages",
        "exclude",
        "all_features",
        "no_default_features",
        "features",
        "target",
        "all_targets",
        "release",
        "profile",
        "locked",
        "flags",
    )
    _fields = __slots__
    workspace: bool
    packages: tuple[str, ...]
    exclude: tuple[str, ...]
    all_features: bool
    no_default_features: bool
    features: tuple[str, ...]
    target: str | None
    all_targets: bool
    release: bool
    profile: str | None
    locked: bool
    flags: tuple[str, ...]

    def __init__(
        self,
        workspace: bool = False,
        packages: tuple[str, ...] = (),
        exclude: tuple[str, ...] = (),
        all_features: bool = False,
        no_default_features: bool = False,
        features: tuple[str, ...] = (),
        target: str | None = None,
        all_targets: bool = False,
        release: bool = False,
        profile: str | None = None,
        locked: bool = True,
        flags: tuple[str, ...] = (),
    ) -> None:
        set_field(self, "workspace", workspace)
        set_field(self, "packages", packages)
        set_field(self, "exclude", exclude)
        set_field(self, "all_features", all_features)
        set_field(self, "no_default_features", no_default_features)
        set_field(self, "features", features)
        set_field(self, "target", target)
        set_field(self, "all_targets", all_targets)
        set_field(self, "release", release)
        set_field(self, "profile", profile)
        set_field(self, "locked", locked)
        set_field(self, "flags", flags)


def _validate(opts: CargoOpts) -> None:
    if opts.all_features and (opts.features or opts.no_default_features):
        raise ValueError(
            "hm.rust: --all-features conflicts with features=/no_default_features=\n"
            f"  observed: all_features=True, features={list(opts.features)!r}, "
            f"no_default_features={opts.no_default_features!r}\n"
            "  → pass all_features=True alone, or list explicit features= without all_features"
        )
    if opts.release and opts.profile is not None:
        raise ValueError(
            "hm.rust: release=True conflicts with profile=\n"
            f"  observed: release=True, profile={opts.profile!r}\n"
            '  → use profile="release" (identical effect) or drop one'
        )
    if opts.exclude:
        if opts.packages:
            raise ValueError(
                "hm.rust: exclude= cannot combine with packages=\n"
                f"  observed: packages={list(opts.packages)!r}, exclude={list(opts.exclude)!r}\n"
                "  → --exclude pairs with --workspace; packages= already selects explicitly, "
                "so drop one"
            )
        if not opts.workspace:
            raise ValueError(
                "hm.rust: exclude= requires workspace=True\n"
                f"  observed: exclude={list(opts.exclude)!r} without workspace=True\n"
                "  → cargo --exclude only applies to --workspace; pass workspace=True"
            )


def cargo_flags(opts: CargoOpts) -> str:
    """The arguments between cargo's subcommand and any ``--``: ``""``, or a string
    starting with a space. ``ValueError`` for options that contradict each other."""
    _validate(opts)
    toks: list[str] = []
    if opts.packages:
        toks += [f"-p {quote(p)}" for p in opts.packages]
    elif opts.workspace:
        toks.append("--workspace")
        toks += [f"--exclude {quote(e)}" for e in opts.exclude]
    if opts.all_targets:
        toks.append("--all-targets")
    if opts.all_features:
        toks.append("--all-features")
    else:
        if opts.no_default_features:
            toks.append("--no-default-features")
        if opts.features:
            toks.append("--features " + quote(",".join(opts.features)))
    if opts.target is not None:
        toks.append(f"--target {quote(opts.target)}")
    if opts.profile is not None:
        toks.append(f"--profile {quote(opts.profile)}")
    elif opts.release:
        toks.append("--release")
    if opts.locked:
        toks.append("--locked")
    toks += list(opts.flags)
    return (" " + " ".join(toks)) if toks else ""
