"""Toolchain presets: ordinary steps for common stacks."""

from ._base import Project, Toolchain, apt_base
from .cmake import cmake
from .elixir import elixir
from .go import go
from .js import js, ts
from .python import python
from .rust import rust
from .zig import zig

py = python

__all__ = ["Project", "Toolchain", "apt_base", "cmake", "elixir", "go", "js", "py", "python", "rust", "ts", "zig"]
