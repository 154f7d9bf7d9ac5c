"""Pipelines as code for ``hm``: ``import harmont as hm``.

A pipeline file in ``.hm/`` defines pipelines with :func:`pipeline`; ``hm run`` imports it, renders
every pipeline to hm's IR and runs the one asked for."""

from ._cache import CachePolicy, compose, forever, on_change, ttl
from ._errors import HarmontError
from ._pipeline import Trigger, Wait, pipeline, pr, pull_request, push, wait
from ._step import DEFAULT_IMAGE, Fork, Step, scratch, sh, timeout
from ._target import BaseImage, Target, target
from .toolchains import apt_base, cmake, elixir, go, js, py, python, rust, ts, zig

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_IMAGE",
    "BaseImage",
    "CachePolicy",
    "Fork",
    "HarmontError",
    "Step",
    "Target",
    "Trigger",
    "Wait",
    "apt_base",
    "cmake",
    "compose",
    "elixir",
    "forever",
    "go",
    "js",
    "on_change",
    "pipeline",
    "pr",
    "pull_request",
    "push",
    "py",
    "python",
    "rust",
    "scratch",
    "sh",
    "target",
    "timeout",
    "ts",
    "ttl",
    "wait",
    "zig",
]
