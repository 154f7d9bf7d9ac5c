"""Steps: shell commands that build on each other's filesystems."""

from __future__ import annotations

import re
from collections.abc import Mapping

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

from ._cache import CachePolicy
from ._duration import seconds
from ._errors import HarmontError

#: The image of a root step that names none.
DEFAULT_IMAGE = "ubuntu:24.04"



def _check_env(env: Mapping[str, str] | None) -> dict[str, str] | None:
    if env is None:
        return None
    if not isinstance(env, Mapping):
        raise HarmontError(f"env must be a mapping of names to strings, not {type(env).__name__}")
    out: dict[str, str] = {}
    for name, value in env.items():
        if not isinstance(name, str) or not name:
            raise HarmontError(f"env names must be non-empty strings, not {name!r}")
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise HarmontError(f"env value of {name} must be a string, not {value!r}")
        out[name] = str(value)
    return out


def _command(cmd: str, cwd: str | None) -> str:
    if not isinstance(cmd, str):
        raise HarmontError(f"a step's command must be a string, not {type(cmd).__name__}")
    if cwd is None:
        return cmd
    if not isinstance(cwd, str) or not cwd.strip():
        raise HarmontError("cwd must be a non-empty path (leave it out to run in /workspace)")
    return f"cd {cwd} && {cmd}"


class Step:
    """A shell step. Steps are immutable: every method returns a new step."""

    __slots__ = (
        "cmd",
        "parent",
        "image",
        "label",
        "cache",
        "env",
        "key",
        "timeout_seconds",
        "runner",
        "runner_args",
    )

    def __init__(
        self,
        cmd: str | None,
        *,
        parent: "Step | None" = None,
        image: str | None = None,
        label: str | None = None,
        cache: CachePolicy | None = None,
        env: Mapping[str, str] | None = None,
        key: str | None = None,
        timeout_seconds: int | None = None,
        runner: str | None = None,
        runner_args: Any = None,
    ) -> None:
        if cache is not None and not isinstance(cache, CachePolicy):
            raise HarmontError(f"cache must be a policy such as hm.forever(), not {cache!r}")
        if label is not None and not isinstance(label, str):
            raise HarmontError(f"label must be a string, not {label!r}")
        if key is not None and (not isinstance(key, str) or not key):
            raise HarmontError(f"key must be a non-empty string, not {key!r}")
        if image is not None and (not isinstance(image, str) or not image):
            raise HarmontError(f"image must be a non-empty string, not {image!r}")
        self.cmd = cmd
        self.parent = parent
        self.image = image
        self.label = label
        self.cache = cache
        self.env = _check_env(env)
        self.key = key
        self.timeout_seconds = timeout_seconds
        self.runner = runner
        self.runner_args = runner_args

    @property
    def is_scratch(self) -> bool:
        """Whether this is an empty root (``hm.scratch``) rather than a command."""
        return self.cmd is None

    def sh(
        self,
        cmd: str,
        *,
        cwd: str | None = None,
        label: str | None = None,
        cache: CachePolicy | None = None,
        env: Mapping[str, str] | None = None,
        image: str | None = None,
        key: str | None = None,
        runner: str | None = None,
        runner_args: Any = None,
    ) -> "Step":
        """A step that runs ``cmd`` on this step's filesystem (a scratch root's first command starts
        from its image)."""
        command = _command(cmd, cwd)
        if self.is_scratch:
            return Step(command, image=image or self.image, label=label, cache=cache, env=env, key=key,
                         runner=runner, runner_args=runner_args)
        return Step(
            command,
            parent=self,
            image=image,
            label=label,
            cache=cache,
            env=env,
            key=key,
            runner=runner,
            runner_args=runner_args,
        )

    def fork(self, label: str | None = None) -> "Fork":
        """A branch point: every ``.sh`` on it starts from this step's filesystem."""
        return Fork(self, label)

    def _replace(self, **changes: Any) -> "Step":
        fields = {name: getattr(self, name) for name in Step.__slots__ if not name.startswith("_")}
        fields.update(changes)
        cmd = fields.pop("cmd")
        return Step(cmd, **fields)

    def __repr__(self) -> str:
        what = "scratch" if self.is_scratch else repr(self.cmd)
        return f"<Step {self.label or what}>"


class Fork:
    """A branch point of a step (see :meth:`Step.fork`)."""

    __slots__ = ("step", "label")

    def __init__(self, step: Step, label: str | None = None) -> None:
        self.step = step
        self.label = label

    def sh(self, cmd: str, **options: Any) -> Step:
        return self.step.sh(cmd, **options)

    def fork(self, label: str | None = None) -> "Fork":
        return Fork(self.step, label)

    def __repr__(self) -> str:
        return f"<Fork of {self.step!r}>"


def sh(
    cmd: str,
    *,
    cwd: str | None = None,
    label: str | None = None,
    cache: CachePolicy | None = None,
    env: Mapping[str, str] | None = None,
    image: str | None = None,
    key: str | None = None,
) -> Step:
    """A root step: ``cmd`` on a fresh ``image`` (``ubuntu:24.04`` when left out)."""
    return Step(_command(cmd, cwd), label=label, cache=cache, env=env, image=image, key=key)


def scratch(image: str | None = None) -> Step:
    """An empty root: its first ``.sh`` runs on ``image``."""
    return Step(None, image=image)


def timeout(duration: Any, step: Step) -> Step:
    """``step`` with a time limit (``"30s"``, ``"5m"``, ``"1h30m"``, seconds or a ``timedelta``)."""
    if isinstance(step, Fork):
        step = step.step
    if not isinstance(step, Step) or step.is_scratch:
        raise HarmontError(f"timeout applies to a step, not {step!r}")
    return step._replace(timeout_seconds=seconds(duration, what="timeout"))


_SHORTCODE = re.compile(r":[a-z0-9_+\-]+:")
_OTHER = re.compile(r"[^a-z0-9]+")


def slugify(label: str) -> str:
    """The key a label gives: lowercase, ``:emoji:`` shortcodes dropped, runs of other characters
    turned into ``-``."""
    text = _SHORTCODE.sub("", label.lower())
    return _OTHER.sub("-", text).strip("-")
