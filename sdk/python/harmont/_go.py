"""The Go preset: ``hm.go(path=".")`` and the bare actions ``hm.go.build()`` and co.

Chain: apt base (curl, ca-certificates, git) → ``:go: install`` (the official
linux-amd64 tarball into ``/usr/local/go``, cached forever: the version is in
the command) → the actions, each forked off the install step.
"""

from __future__ import annotations

from ._toolchain import advance_install, emit, make_install_chain, split_action_kwargs
from ._validation import is_dotted_numbers, line_end, require_str
from ._record import Record, set_field
from .cache import CacheForever

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Self

    from ._step import Step
    from .cache import CachePolicy

APT_PACKAGES = ("curl", "ca-certificates", "git")


def _go_install_cmd(version: str) -> str:
    return (
        f"curl -fsSL https://go.dev/dl/go{version}.linux-amd64.tar.gz "
        "-o /tmp/go.tgz && rm -rf /usr/local/go && "
        "tar -C /usr/local -xzf /tmp/go.tgz && "
        "ln -sf /usr/local/go/bin/go /usr/local/bin/go && "
        "ln -sf /usr/local/go/bin/gofmt /usr/local/bin/gofmt && "
        "go version"
    )


class GoToolchain(Record):
    """Go installed, for the module at ``path``: what ``hm.go()`` returns.

    Each action (``build``, ``test``, ``vet``, ``fmt``) is a new step off
    ``installed``; its keywords go to ``sh`` (``label=`` replaces ``:go: <action>``).
    """

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
        """A copy whose actions run after ``cmd`` (code generation, fixtures, tools)."""
        return advance_install(self, cmd, cwd=cwd, label=label, cache=cache, env=env)

    def _emit(self, cmd: str, default_label: str, **kw: Any) -> Step:
        return emit(self.installed, cmd, default_label, kw)

    def build(self, **kw: Any) -> Step:
        """``go build ./...``"""
        return self._emit(f"cd {self.path} && go build ./...", ":go: build", **kw)

    def test(self, **kw: Any) -> Step:
        """``go test ./...``"""
        return self._emit(f"cd {self.path} && go test ./...", ":go: test", **kw)

    def vet(self, **kw: Any) -> Step:
        """``go vet ./...``"""
        return self._emit(f"cd {self.path} && go vet ./...", ":go: vet", **kw)

    def fmt(self, **kw: Any) -> Step:
        """Fails when ``gofmt -l`` lists any file."""
        return self._emit(f'cd {self.path} && test -z "$(gofmt -l .)"', ":go: fmt", **kw)


def _make_go(
    *,
    path: str = ".",
    version: str = "1.23.2",
    image: str | None = None,
    base: Step | None = None,
) -> GoToolchain:
    # ^[0-9]+\.[0-9]+(\.[0-9]+)?$
    if not is_dotted_numbers(line_end(require_str(version, "hm.go: version")), 2, 3):
        raise ValueError(f'hm.go: invalid version {version!r}\n  → use a Go version like "1.23.2"')
    installed = make_install_chain(
        apt_packages=APT_PACKAGES,
        install_cmd=_go_install_cmd(version),
        install_cache=CacheForever(env_keys=()),
        lang_tag="go",
        install_tag="install",
        image=image,
        base=base,
    )
    return GoToolchain(path=path, installed=installed)


class GoEntry:
    """``hm.go``: call it for a :class:`GoToolchain`, or use a bare action
    (``hm.go.test(path="api", label="...")``) for a one-off step; a bare action's
    ``cache``, ``env``, ``label`` and ``key`` go to the step, the rest to ``hm.go()``."""

    def __call__(
        self,
        *,
        path: str = ".",
        version: str = "1.23.2",
        image: str | None = None,
        base: Step | None = None,
    ) -> GoToolchain:
        """Go ``version`` (``MAJOR.MINOR[.PATCH]``) for the module at ``path``; ``image``
        for the apt step, or ``base`` to start from an existing step instead."""
        return _make_go(path=path, version=version, image=image, base=base)

    def build(self, **kw: Any) -> Step:
        action = split_action_kwargs(kw)
        return self(**kw).build(**action)

    def test(self, **kw: Any) -> Step:
        action = split_action_kwargs(kw)
        return self(**kw).test(**action)

    def vet(self, **kw: Any) -> Step:
        action = split_action_kwargs(kw)
        return self(**kw).vet(**action)

    def fmt(self, **kw: Any) -> Step:
        action = split_action_kwargs(kw)
        return self(**kw).fmt(**action)


go: GoEntry = GoEntry()
