"""Shared setup: the SDK on ``sys.path`` and empty registries for every test."""

import os
import sys

import pytest

SDK_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if SDK_DIR not in sys.path:
    sys.path.insert(0, SDK_DIR)

import harmont._registry  # noqa: E402


@pytest.fixture(autouse=True)
def fresh_registries():
    """Every test defines its pipelines and targets from nothing."""
    harmont._registry.reset()
    yield
    harmont._registry.reset()
