"""``hm.py``: Python project presets (``hm.py.uv``)."""

from .uv import UvProject, uv

__all__ = ["UvProject", "uv"]
