"""The SDK on ``sys.path``, and empty registries around every test."""

import os
import sys

import pytest

SDK_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if SDK_DIR not in sys.path:
    sys.path.insert(0, SDK_DIR)

from harmont._registry import clear_registry  # noqa: E402
from harmont._target import clear_target_cache  # noqa: E402


@pytest.fixture(autouse=True)
def fresh_registries():
    """Every test defines its pipelines and targets from nothing."""
    clear_registry()
    clear_target_cache()
    yield
    clear_registry()
    clear_target_cache()
