"""The Rust preset: ``hm.rust.toolchain()`` and ``hm.rust.project()``.

Chain: apt base (curl, ca-certificates, build-essential, pkg-config,
libssl-dev) → ``:rust: rustup`` (the channel or version, with the
components; cached forever) → the actions. A project adds
``:rust: warmup`` (``cargo build --workspace --tests --locked``, cached on
``Cargo.lock``, the manifests and the sources) so that its actions reuse one
compile. Every action takes cargo's options (see :mod:`harmont._cargo`)
and passes other keywords to ``sh``.
"""

from __future__ import annotations

from ._cargo import CargoOpts, cargo_flags, quote
from ._record import Record, set_field
from ._toolchain import advance_install, emit, make_install_chain
from ._validation import line_end, only_chars, require_str
from .cache import CacheForever, CacheOnChange

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Self

    from ._step import Step
    from .cache import CachePolicy

APT_PACKAGES = ("curl", "ca-certificates", "build-essential", "pkg-config", "libssl-dev")

_VERSION_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789.-"


def _rustup_cmd(version: str, components: tuple[str, ...]) -> str:
    return (
        "curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | "
        f"sh -s -- -y --default-toolchain {version} --profile minimal "
        f"--component {','.join(components)} && . $HOME/.cargo/env && "
        "rustc --version && cargo --version"
    )


def _build_cmd(**o: Any) -> str:
    return f"cargo build{cargo_flags(CargoOpts(**o))}"


def _test_cmd(*, nextest: bool = False, **o: Any) -> str:
    runner = "cargo nextest run" if nextest else "cargo test"
    return f"{runner}{cargo_flags(CargoOpts(**o))}"


def _doctest_cmd(**o: Any) -> str:
    return f"cargo test{cargo_flags(CargoOpts(**o))} --doc"


def _clippy_cmd(*, deny_warnings: bool = True, extra_lints: tuple[str, ...] = (), **o: Any) -> str:
    trail = (["-D warnings"] if deny_warnings else []) + list(extra_lints)
    suffix = (" -- " + " ".join(trail)) if trail else ""
    return f"cargo clippy{cargo_flags(CargoOpts(**o))}{suffix}"


def _fmt_cmd(*, all: bool = True, check: bool = True, flags: tuple[str, ...] = ()) -> str:  # noqa: A002
    toks = ["cargo fmt"]
    if all:
        toks.append("--all")
    if check:
        toks.append("--check")
    return " ".join(toks + list(flags))


def _doc_cmd(*, no_deps: bool = True, document_private_items: bool = False, **o: Any) -> str:
    toks = []
    if no_deps:
        toks.append("--no-deps")
    if document_private_items:
        toks.append("--document-private-items")
    prefix = (" " + " ".join(toks)) if toks else ""
    return f"cargo doc{prefix}{cargo_flags(CargoOpts(**o))}"


def _doc_env(kw: dict[str, Any], *, deny_warnings: bool) -> None:
    """``RUSTDOCFLAGS=-D warnings`` in the step's env, unless it sets the variable."""
    if deny_warnings:
        merged = dict(kw.get("env") or {})
        merged.setdefault("RUSTDOCFLAGS", "-D warnings")
        kw["env"] = merged


def _with_target_add(cargo: str, *, target: str | None, add_target: bool) -> str:
    """``cargo`` after ``rustup target add`` for a cross target: the install step only has
    the host's."""
    if target is not None and add_target:
        return f"rustup target add {quote(target)} && {cargo}"
    return cargo


def _hack_cmd(
    *,
    subcommand: str = "check",
    depth: int = 2,
    each_feature: bool = False,
    no_dev_deps: bool = True,
    skip: tuple[str, ...] = (),
    include_features: tuple[str, ...] = (),
    keep_going: bool = False,
    flags: tuple[str, ...] = (),
) -> str:
    toks = ["cargo hack", subcommand]
    if each_feature:
        toks.append("--each-feature")
    else:
        toks += ["--feature-powerset", "--depth", str(depth)]
    if no_dev_deps:
        toks.append("--no-dev-deps")
    if skip:
        toks.append("--skip " + ",".join(quote(s) for s in skip))
    if include_features:
        toks.append("--include-features " + ",".join(quote(s) for s in include_features))
    if keep_going:
        toks.append("--keep-going")
    return " ".join(toks + list(flags))


class RustToolchain(Record):
    """Rust installed, for the crate or workspace at ``path``: what
    ``hm.rust.toolchain()`` returns. Actions fork off ``installed``."""

    __slots__ = ("path", "installed")
    _fields = __slots__
    path: str
    installed: Step

    def __init__(self, path: str, installed: Step) -> None:
        set_field(self, "path", path)
        set_field(self, "installed", installed)

    def setup(
        self,
        cmd: str,
        *,
        cwd: str | None = None,
        label: str | None = None,
        cache: CachePolicy | None = None,
        env: dict[str, str] | None = None,
    ) -> Self:
        """A copy whose actions (and projects) run after ``cmd``."""
        return advance_install(self, cmd, cwd=cwd, label=label, cache=cache, env=env)

    def _wrap(self, cargo: str) -> str:
        return f". $HOME/.cargo/env && cd {self.path} && {cargo}"

    def _emit(self, cargo: str, default_label: str, **kw: Any) -> Step:
        return emit(self.installed, self._wrap(cargo), default_label, kw)

    def build(
        self,
        *,
        workspace: bool = False,
        packages: tuple[str, ...] = (),
        exclude: tuple[str, ...] = (),
        all_features: bool = False,
        no_default_features: bool = False,
        features: tuple[str, ...] = (),
        target: str | None = None,
        add_target: bool = True,
        all_targets: bool = False,
        release: bool = False,
        profile: str | None = None,
        locked: bool = True,
        flags: tuple[str, ...] = (),
        **kw: Any,
    ) -> Step:
        """``cargo build``; a ``target`` is added with rustup first unless ``add_target=False``."""
        cmd = _build_cmd(
            workspace=workspace, packages=packages, exclude=exclude, all_features=all_features,
            no_default_features=no_default_features, features=features, target=target,
            all_targets=all_targets, release=release, profile=profile, locked=locked, flags=flags,
        )  # fmt: skip
        return self._emit(_with_target_add(cmd, target=target, add_target=add_target), ":rust: build", **kw)

    def test(
        self,
        *,
        nextest: bool = False,
        workspace: bool = False,
        packages: tuple[str, ...] = (),
        exclude: tuple[str, ...] = (),
        all_features: bool = False,
        no_default_features: bool = False,
        features: tuple[str, ...] = (),
        target: str | None = None,
        add_target: bool = True,
        all_targets: bool = False,
        release: bool = False,
        profile: str | None = None,
        locked: bool = True,
        flags: tuple[str, ...] = (),
        **kw: Any,
    ) -> Step:
        """``cargo test``, or ``cargo nextest run`` (which skips doctests: see ``doctest``)."""
        cmd = _test_cmd(
            nextest=nextest, workspace=workspace, packages=packages, exclude=exclude,
            all_features=all_features, no_default_features=no_default_features, features=features,
            target=target, all_targets=all_targets, release=release, profile=profile,
            locked=locked, flags=flags,
        )  # fmt: skip
        return self._emit(_with_target_add(cmd, target=target, add_target=add_target), ":rust: test", **kw)

    def doctest(
        self,
        *,
        workspace: bool = False,
        packages: tuple[str, ...] = (),
        exclude: tuple[str, ...] = (),
        all_features: bool = False,
        no_default_features: bool = False,
        features: tuple[str, ...] = (),
        target: str | None = None,
        add_target: bool = True,
        locked: bool = True,
        flags: tuple[str, ...] = (),
        **kw: Any,
    ) -> Step:
        """``cargo test --doc``."""
        cmd = _doctest_cmd(
            workspace=workspace, packages=packages, exclude=exclude, all_features=all_features,
            no_default_features=no_default_features, features=features, target=target,
            locked=locked, flags=flags,
        )  # fmt: skip
        return self._emit(_with_target_add(cmd, target=target, add_target=add_target), ":rust: doctest", **kw)

    def clippy(
        self,
        *,
        workspace: bool = False,
        packages: tuple[str, ...] = (),
        exclude: tuple[str, ...] = (),
        all_features: bool = False,
        no_default_features: bool = False,
        features: tuple[str, ...] = (),
        target: str | None = None,
        add_target: bool = True,
        all_targets: bool = True,
        locked: bool = True,
        deny_warnings: bool = True,
        extra_lints: tuple[str, ...] = (),
        flags: tuple[str, ...] = (),
        **kw: Any,
    ) -> Step:
        """``cargo clippy``, all targets, ``-- -D warnings`` unless ``deny_warnings=False``,
        then ``extra_lints``."""
        cmd = _clippy_cmd(
            deny_warnings=deny_warnings, extra_lints=extra_lints, workspace=workspace,
            packages=packages, exclude=exclude, all_features=all_features,
            no_default_features=no_default_features, features=features, target=target,
            all_targets=all_targets, locked=locked, flags=flags,
        )  # fmt: skip
        return self._emit(_with_target_add(cmd, target=target, add_target=add_target), ":rust: clippy", **kw)

    def fmt(
        self,
        *,
        all: bool = True,  # noqa: A002
        check: bool = True,
        flags: tuple[str, ...] = (),
        **kw: Any,
    ) -> Step:
        """``cargo fmt --all --check``."""
        return self._emit(_fmt_cmd(all=all, check=check, flags=flags), ":rust: fmt", **kw)

    def doc(
        self,
        *,
        no_deps: bool = True,
        document_private_items: bool = False,
        workspace: bool = False,
        packages: tuple[str, ...] = (),
        exclude: tuple[str, ...] = (),
        all_features: bool = False,
        no_default_features: bool = False,
        features: tuple[str, ...] = (),
        target: str | None = None,
        add_target: bool = True,
        locked: bool = True,
        deny_warnings: bool = True,
        flags: tuple[str, ...] = (),
        **kw: Any,
    ) -> Step:
        """``cargo doc --no-deps``, with ``RUSTDOCFLAGS=-D warnings`` unless
        ``deny_warnings=False``."""
        _doc_env(kw, deny_warnings=deny_warnings)
        cmd = _doc_cmd(
            no_deps=no_deps, document_private_items=document_private_items, workspace=workspace,
            packages=packages, exclude=exclude, all_features=all_features,
            no_default_features=no_default_features, features=features, target=target,
            locked=locked, flags=flags,
        )  # fmt: skip
        return self._emit(_with_target_add(cmd, target=target, add_target=add_target), ":rust: doc", **kw)

    def warmup(self, **kw: Any) -> Step:
        """``cargo build --workspace --tests --locked``: dependencies compiled for later steps."""
        return self._emit("cargo build --workspace --tests --locked", ":rust: warmup", **kw)

    def feature_powerset(
        self,
        *,
        subcommand: str = "check",
        depth: int = 2,
        each_feature: bool = False,
        no_dev_deps: bool = True,
        skip: tuple[str, ...] = (),
        include_features: tuple[str, ...] = (),
        keep_going: bool = False,
        flags: tuple[str, ...] = (),
        **kw: Any,
    ) -> Step:
        """A cargo-hack sweep over feature combinations (``--feature-powerset --depth 2``, or
        ``--each-feature``), after installing cargo-hack (cached forever)."""
        # The install is global: no `cd`, so its cache entry is shared by every path.
        hack = self.installed.sh(
            ". $HOME/.cargo/env && cargo install cargo-hack --locked",
            label=":rust: install cargo-hack",
            cache=CacheForever(env_keys=()),
        )
        cmd = _hack_cmd(
            subcommand=subcommand, depth=depth, each_feature=each_feature,
            no_dev_deps=no_dev_deps, skip=skip, include_features=include_features,
            keep_going=keep_going, flags=flags,
        )  # fmt: skip
        return emit(hack, self._wrap(cmd), ":rust: feature-powerset", kw)


class RustProject(Record):
    """A Rust workspace's CI: what ``hm.rust.project()`` returns.

    Actions fork off the shared ``warmup`` step and default to
    ``workspace=True``; ``fmt`` forks off the install step, in parallel with
    the warmup. ``ci()`` gives the usual set.
    """

    __slots__ = ("toolchain", "warmup")
    _fields = __slots__
    toolchain: RustToolchain
    warmup: Step

    def __init__(self, toolchain: RustToolchain, warmup: Step) -> None:
        set_field(self, "toolchain", toolchain)
        set_field(self, "warmup", warmup)

    def _emit(self, cargo: str, default_label: str, **kw: Any) -> Step:
        return emit(self.warmup, self.toolchain._wrap(cargo), default_label, kw)

    def build(
        self,
        *,
        workspace: bool = True,
        packages: tuple[str, ...] = (),
        exclude: tuple[str, ...] = (),
        all_features: bool = False,
        no_default_features: bool = False,
        features: tuple[str, ...] = (),
        target: str | None = None,
        add_target: bool = True,
        all_targets: bool = False,
        release: bool = False,
        profile: str | None = None,
        locked: bool = True,
        flags: tuple[str, ...] = (),
        **kw: Any,
    ) -> Step:
        """``cargo build --workspace``."""
        cmd = _build_cmd(
            workspace=workspace, packages=packages, exclude=exclude, all_features=all_features,
            no_default_features=no_default_features, features=features, target=target,
            all_targets=all_targets, release=release, profile=profile, locked=locked, flags=flags,
        )  # fmt: skip
        return self._emit(_with_target_add(cmd, target=target, add_target=add_target), ":rust: build", **kw)

    def test(
        self,
        *,
        nextest: bool = False,
        workspace: bool = True,
        packages: tuple[str, ...] = (),
        exclude: tuple[str, ...] = (),
        all_features: bool = False,
        no_default_features: bool = False,
        features: tuple[str, ...] = (),
        target: str | None = None,
        add_target: bool = True,
        all_targets: bool = False,
        release: bool = False,
        profile: str | None = None,
        locked: bool = True,
        flags: tuple[str, ...] = (),
        **kw: Any,
    ) -> Step:
        """``cargo test --workspace`` (or ``cargo nextest run``)."""
        cmd = _test_cmd(
            nextest=nextest, workspace=workspace, packages=packages, exclude=exclude,
            all_features=all_features, no_default_features=no_default_features, features=features,
            target=target, all_targets=all_targets, release=release, profile=profile,
            locked=locked, flags=flags,
        )  # fmt: skip
        return self._emit(_with_target_add(cmd, target=target, add_target=add_target), ":rust: test", **kw)

    def doctest(
        self,
        *,
        workspace: bool = True,
        packages: tuple[str, ...] = (),
        exclude: tuple[str, ...] = (),
        all_features: bool = False,
        no_default_features: bool = False,
        features: tuple[str, ...] = (),
        target: str | None = None,
        add_target: bool = True,
        locked: bool = True,
        flags: tuple[str, ...] = (),
        **kw: Any,
    ) -> Step:
        """``cargo test --workspace --doc``."""
        cmd = _doctest_cmd(
            workspace=workspace, packages=packages, exclude=exclude, all_features=all_features,
            no_default_features=no_default_features, features=features, target=target,
            locked=locked, flags=flags,
        )  # fmt: skip
        return self._emit(_with_target_add(cmd, target=target, add_target=add_target), ":rust: doctest", **kw)

    def clippy(
        self,
        *,
        workspace: bool = True,
        packages: tuple[str, ...] = (),
        exclude: tuple[str, ...] = (),
        all_features: bool = False,
        no_default_features: bool = False,
        features: tuple[str, ...] = (),
        target: str | None = None,
        add_target: bool = True,
        all_targets: bool = True,
        locked: bool = True,
        deny_warnings: bool = True,
        extra_lints: tuple[str, ...] = (),
        flags: tuple[str, ...] = (),
        **kw: Any,
    ) -> Step:
        """``cargo clippy --workspace --all-targets ... -- -D warnings``."""
        cmd = _clippy_cmd(
            deny_warnings=deny_warnings, extra_lints=extra_lints, workspace=workspace,
            packages=packages, exclude=exclude, all_features=all_features,
            no_default_features=no_default_features, features=features, target=target,
            all_targets=all_targets, locked=locked, flags=flags,
        )  # fmt: skip
        return self._emit(_with_target_add(cmd, target=target, add_target=add_target), ":rust: clippy", **kw)

    def fmt(
        self,
        *,
        all: bool = True,  # noqa: A002
        check: bool = True,
        flags: tuple[str, ...] = (),
        **kw: Any,
    ) -> Step:
        """``cargo fmt --all --check``, off the install step (it needs no compile)."""
        return self.toolchain.fmt(all=all, check=check, flags=flags, **kw)

    def doc(
        self,
        *,
        no_deps: bool = True,
        document_private_items: bool = False,
        workspace: bool = True,
        packages: tuple[str, ...] = (),
        exclude: tuple[str, ...] = (),
        all_features: bool = False,
        no_default_features: bool = False,
        features: tuple[str, ...] = (),
        target: str | None = None,
        add_target: bool = True,
        locked: bool = True,
        deny_warnings: bool = True,
        flags: tuple[str, ...] = (),
        **kw: Any,
    ) -> Step:
        """``cargo doc --no-deps --workspace`` with ``RUSTDOCFLAGS=-D warnings``."""
        _doc_env(kw, deny_warnings=deny_warnings)
        cmd = _doc_cmd(
            no_deps=no_deps, document_private_items=document_private_items, workspace=workspace,
            packages=packages, exclude=exclude, all_features=all_features,
            no_default_features=no_default_features, features=features, target=target,
            locked=locked, flags=flags,
        )  # fmt: skip
        return self._emit(_with_target_add(cmd, target=target, add_target=add_target), ":rust: doc", **kw)

    def ci(self, *, nextest: bool = False, doc: bool = False) -> tuple[Step, ...]:
        """test, clippy and fmt; with ``nextest=True`` nextest plus ``doctest``, with
        ``doc=True`` ``doc`` too."""
        steps = [self.test(nextest=nextest)]
        if nextest:
            steps.append(self.doctest())
        steps.append(self.clippy())
        steps.append(self.fmt())
        if doc:
            steps.append(self.doc())
        return tuple(steps)

    def feature_powerset(self, **kw: Any) -> Step:
        """:meth:`RustToolchain.feature_powerset`."""
        return self.toolchain.feature_powerset(**kw)


def _make_rust(
    *,
    path: str = ".",
    version: str = "stable",
    image: str | None = None,
    components: tuple[str, ...] = ("clippy", "rustfmt"),
    base: Step | None = None,
) -> RustToolchain:
    # ^[a-z0-9.-]+$
    if not only_chars(line_end(require_str(version, "hm.rust: version")), _VERSION_CHARS):
        raise ValueError(
            f"hm.rust: invalid version {version!r}\n"
            '  → use a rustup channel name (e.g. "stable") or a pinned version (e.g. "1.81.0")'
        )
    installed = make_install_chain(
        apt_packages=APT_PACKAGES,
        install_cmd=_rustup_cmd(version, components),
        install_cache=CacheForever(env_keys=()),
        lang_tag="rust",
        install_tag="rustup",
        image=image,
        base=base,
    )
    return RustToolchain(path=path, installed=installed)


def _make_rust_project(
    *,
    path: str = ".",
    version: str = "stable",
    image: str | None = None,
    components: tuple[str, ...] = ("clippy", "rustfmt"),
    base: Step | None = None,
    cache: CachePolicy | None = None,
) -> RustProject:
    tc = _make_rust(path=path, version=version, image=image, components=components, base=base)
    if not path:
        path = "."
    if path == ".":
        watched = ("Cargo.lock", "**/Cargo.toml", "**/*.rs")
    else:
        watched = (f"{path}/Cargo.lock", f"{path}/**/Cargo.toml", f"{path}/**/*.rs")
    warm = tc._emit(
        "cargo build --workspace --tests --locked",
        ":rust: warmup",
        cache=cache if cache is not None else CacheOnChange(paths=watched),
    )
    return RustProject(toolchain=tc, warmup=warm)


class RustEntry:
    """``hm.rust``: ``toolchain()`` for Rust alone, ``project()`` for a workspace's CI."""

    @staticmethod
    def toolchain(
        *,
        path: str = ".",
        version: str = "stable",
        image: str | None = None,
        components: tuple[str, ...] = ("clippy", "rustfmt"),
        base: Step | None = None,
    ) -> RustToolchain:
        """Rust ``version`` (a channel such as ``"stable"`` or ``"1.81.0"``) with
        ``components``, for the crate at ``path``; ``image`` for the apt step, or
        ``base`` to start from an existing step."""
        return _make_rust(path=path, version=version, image=image, components=components, base=base)

    @staticmethod
    def project(
        *,
        path: str = ".",
        version: str = "stable",
        image: str | None = None,
        components: tuple[str, ...] = ("clippy", "rustfmt"),
        base: Step | None = None,
        cache: CachePolicy | None = None,
    ) -> RustProject:
        """As ``toolchain()``, plus the shared warmup step (``cache=`` replaces its policy)."""
        return _make_rust_project(
            path=path, version=version, image=image, components=components, base=base, cache=cache
        )


rust: RustEntry = RustEntry()
