"""Forgets every pipeline, target and shared step: one evaluation starts from nothing."""

from __future__ import annotations


def reset() -> None:
    from . import _pipeline, _target
    from .toolchains import _base

    _pipeline.PIPELINES.clear()
    _target.TARGETS.clear()
    _base._apt_bases.clear()
