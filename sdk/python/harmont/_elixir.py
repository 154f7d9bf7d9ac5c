"""The Elixir preset: ``hm.elixir(path=".")`` and its bare actions.

Chain: apt base (curl, ca-certificates, git, unzip, build-essential,
autoconf, libncurses-dev, libssl-dev) → ``:ex: erlang-install`` (the
Erlang Solutions package for the OTP version) → ``:ex: elixir-install``
(the prebuilt release for that OTP major, with hex and rebar), both cached
forever → ``:ex: mix-deps`` (cached on ``mix.lock``) → the actions. Every
step after the apt base runs with ``ELIXIR_ERL_OPTIONS=+fnu``.
"""

from __future__ import annotations

from ._record import Record, set_field
from ._toolchain import ACTION_KWARGS, advance_install, emit, make_install_chain, split_action_kwargs
from ._validation import is_dotted_numbers, line_end, require_str
from .cache import CacheForever, CacheOnChange

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Self

    from ._step import Step
    from .cache import CachePolicy

APT_PACKAGES = (
    "curl",
    "ca-certificates",
    "git",
    "unzip",
    "build-essential",
    "autoconf",
    "libncurses-dev",
    "libssl-dev",
)

_ELIXIR_ACTION_KWARGS = ACTION_KWARGS | {"cover", "partitions", "strict", "mix_env"}

_ELIXIR_ENV = {"ELIXIR_ERL_OPTIONS": "+fnu"}


def _erlang_install_cmd(otp_version: str) -> str:
    return (
        "curl -fsSL https://binaries2.erlang-solutions.com/debian/pool/contrib/e/"
        f"esl-erlang/esl-erlang_{otp_version}-1~debian~bookworm_amd64.deb "
        "-o /tmp/erlang.deb && (dpkg -i /tmp/erlang.deb || apt-get install -fy) && "
        "erl -eval 'erlang:display(erlang:system_info(otp_release)), halt().' -noshell"
    )


def _elixir_install_cmd(elixir_version: str, otp_major: str) -> str:
    return (
        "curl -fsSL https://github.com/elixir-lang/elixir/releases/download/"
        f"v{elixir_version}/elixir-otp-{otp_major}.zip -o /tmp/elixir.zip && "
        "unzip -q /tmp/elixir.zip -d /usr/local/elixir && "
        "ln -sf /usr/local/elixir/bin/elixir /usr/local/bin/elixir && "
        "ln -sf /usr/local/elixir/bin/mix /usr/local/bin/mix && "
        "ln -sf /usr/local/elixir/bin/iex /usr/local/bin/iex && "
        "mix local.hex --force && mix local.rebar --force && elixir --version"
    )


class ElixirProject(Record):
    """A Mix project with its dependencies fetched and compiled: what ``hm.elixir()``
    returns. Actions fork off ``installed``; ``dialyzer`` off the shared ``plt()`` step."""

    __slots__ = ("path", "installed", "_plt_step")
    _fields = __slots__
    path: str
    installed: Step
    _plt_step: Step | None

    def __init__(self, path: str, installed: Step) -> None:
        set_field(self, "path", path)
        set_field(self, "installed", installed)
        set_field(self, "_plt_step", None)

    @classmethod
    def _init_fields(cls) -> tuple[str, ...]:
        return ("path", "installed")

    def __repr__(self) -> str:
        return f"ElixirProject(path={self.path!r}, installed={self.installed!r})"

    def setup(
        self,
        cmd: str,
        *,
        cwd: str | None = None,
        label: str | None = None,
        cache: CachePolicy | None = None,
        env: dict[str, str] | None = None,
    ) -> Self:
        """A copy whose actions run after ``cmd``."""
        return advance_install(self, cmd, cwd=cwd, label=label, cache=cache, env=env)

    def _emit(self, cmd: str, default_label: str, **kw: Any) -> Step:
        kw["env"] = {**_ELIXIR_ENV, **(kw.get("env") or {})}
        return emit(self.installed, cmd, default_label, kw)

    def compile(self, **kw: Any) -> Step:
        """``mix compile --warnings-as-errors``"""
        return self._emit(f"cd {self.path} && mix compile --warnings-as-errors", ":ex: compile", **kw)

    def test(self, **kw: Any) -> Step:
        """``mix test`` (``cover=True``: ``--cover``; ``partitions=N``: ``--partitions N``)."""
        cmd = "mix test"
        if kw.pop("cover", False):
            cmd += " --cover"
        partitions = kw.pop("partitions", None)
        if partitions is not None:
            cmd += f" --partitions {partitions}"
        return self._emit(f"cd {self.path} && {cmd}", ":ex: test", **kw)

    def format(self, **kw: Any) -> Step:
        """``mix format --check-formatted``"""
        return self._emit(f"cd {self.path} && mix format --check-formatted", ":ex: format", **kw)

    def credo(self, **kw: Any) -> Step:
        """``mix credo --strict`` (``strict=False`` drops ``--strict``)."""
        cmd = "mix credo --strict" if kw.pop("strict", True) else "mix credo"
        return self._emit(f"cd {self.path} && {cmd}", ":ex: credo", **kw)

    def plt(self) -> Step:
        """``mix dialyzer --plt``, cached on ``mix.lock``: one step per project object."""
        if self._plt_step is not None:
            return self._plt_step
        step = self.installed.sh(
            f"cd {self.path} && mix dialyzer --plt",
            label=":ex: plt",
            cache=CacheOnChange(paths=(f"{self.path}/mix.lock",)),
            env=_ELIXIR_ENV,
        )
        set_field(self, "_plt_step", step)
        return step

    def dialyzer(self, **kw: Any) -> Step:
        """``mix dialyzer``, after :meth:`plt`."""
        kw["env"] = {**_ELIXIR_ENV, **(kw.get("env") or {})}
        return emit(self.plt(), f"cd {self.path} && mix dialyzer", ":ex: dialyzer", kw)

    def sobelow(self, **kw: Any) -> Step:
        """``mix sobelow --exit``"""
        return self._emit(f"cd {self.path} && mix sobelow --exit", ":ex: sobelow", **kw)

    def deps_audit(self, **kw: Any) -> Step:
        """``mix deps.audit``"""
        return self._emit(f"cd {self.path} && mix deps.audit", ":ex: deps-audit", **kw)

    def hex_audit(self, **kw: Any) -> Step:
        """``mix hex.audit``"""
        return self._emit(f"cd {self.path} && mix hex.audit", ":ex: hex-audit", **kw)

    def release(self, **kw: Any) -> Step:
        """``MIX_ENV=prod mix release`` (``mix_env=`` for another environment)."""
        mix_env = kw.pop("mix_env", "prod")
        return self._emit(f"cd {self.path} && MIX_ENV={mix_env} mix release", ":ex: release", **kw)

    def mix(self, task: str, **kw: Any) -> Step:
        """``mix TASK``, labelled ``:ex: TASK``."""
        return self._emit(f"cd {self.path} && mix {task}", f":ex: {task}", **kw)


def _make_elixir(
    *,
    path: str = ".",
    elixir_version: str = "1.18.3",
    otp_version: str = "27.3.3",
    image: str | None = None,
    base: Step | None = None,
) -> ElixirProject:
    # ^[0-9]+\.[0-9]+\.[0-9]+$
    if not is_dotted_numbers(line_end(require_str(elixir_version, "hm.elixir: elixir_version")), 3, 3):
        raise ValueError(
            f"hm.elixir: invalid elixir version {elixir_version!r}\n"
            '  → use a version like "1.18.3"'
        )
    # ^[0-9]+(\.[0-9]+(\.[0-9]+)?)?$
    if not is_dotted_numbers(line_end(require_str(otp_version, "hm.elixir: otp_version")), 1, 3):
        raise ValueError(
            f'hm.elixir: invalid otp version {otp_version!r}\n  → use a version like "27.3.3"'
        )
    erlang = make_install_chain(
        apt_packages=APT_PACKAGES,
        install_cmd=_erlang_install_cmd(otp_version),
        install_cache=CacheForever(env_keys=()),
        lang_tag="ex",
        install_tag="erlang-install",
        image=image,
        base=base,
    )
    elixir = erlang.sh(
        _elixir_install_cmd(elixir_version, otp_version.split(".")[0]),
        label=":ex: elixir-install",
        cache=CacheForever(env_keys=()),
        env=_ELIXIR_ENV,
    )
    deps = elixir.sh(
        f"cd {path} && mix deps.get && mix deps.compile",
        label=":ex: mix-deps",
        cache=CacheOnChange(paths=(f"{path}/mix.lock",)),
        env=_ELIXIR_ENV,
    )
    return ElixirProject(path=path, installed=deps)


class ElixirEntry:
    """``hm.elixir``: call it for an :class:`ElixirProject`, or use a bare action
    (``hm.elixir.test(cover=True)``); the step's keywords (``cache``, ``env``, ``label``,
    ``key`` and the action's own) go to the action, the rest to ``hm.elixir()``."""

    def __call__(
        self,
        *,
        path: str = ".",
        elixir_version: str = "1.18.3",
        otp_version: str = "27.3.3",
        image: str | None = None,
        base: Step | None = None,
    ) -> ElixirProject:
        """Erlang/OTP ``otp_version`` and Elixir ``elixir_version`` for the project at
        ``path``; ``image`` for the apt step, or ``base`` to start from an existing step."""
        return _make_elixir(
            path=path, elixir_version=elixir_version, otp_version=otp_version, image=image, base=base
        )

    def compile(self, **kw: Any) -> Step:
        action = split_action_kwargs(kw, _ELIXIR_ACTION_KWARGS)
        return self(**kw).compile(**action)

    def test(self, **kw: Any) -> Step:
        action = split_action_kwargs(kw, _ELIXIR_ACTION_KWARGS)
        return self(**kw).test(**action)

    def format(self, **kw: Any) -> Step:
        action = split_action_kwargs(kw, _ELIXIR_ACTION_KWARGS)
        return self(**kw).format(**action)

    def credo(self, **kw: Any) -> Step:
        action = split_action_kwargs(kw, _ELIXIR_ACTION_KWARGS)
        return self(**kw).credo(**action)

    def plt(self, **kw: Any) -> Step:
        return self(**kw).plt()

    def dialyzer(self, **kw: Any) -> Step:
        action = split_action_kwargs(kw, _ELIXIR_ACTION_KWARGS)
        return self(**kw).dialyzer(**action)

    def sobelow(self, **kw: Any) -> Step:
        action = split_action_kwargs(kw, _ELIXIR_ACTION_KWARGS)
        return self(**kw).sobelow(**action)

    def deps_audit(self, **kw: Any) -> Step:
        action = split_action_kwargs(kw, _ELIXIR_ACTION_KWARGS)
        return self(**kw).deps_audit(**action)

    def hex_audit(self, **kw: Any) -> Step:
        action = split_action_kwargs(kw, _ELIXIR_ACTION_KWARGS)
        return self(**kw).hex_audit(**action)

    def release(self, **kw: Any) -> Step:
        action = split_action_kwargs(kw, _ELIXIR_ACTION_KWARGS)
        return self(**kw).release(**action)

    def mix(self, task: str, **kw: Any) -> Step:
        action = split_action_kwargs(kw)
        return self(**kw).mix(task, **action)


elixir: ElixirEntry = ElixirEntry()
