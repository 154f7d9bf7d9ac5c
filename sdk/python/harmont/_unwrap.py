"""What a pipeline function may return, turned into its leaf steps.

A step is a leaf; tuples and lists are flattened; a toolchain object gives
its default actions: ``RustProject`` test, clippy and fmt, ``RustToolchain``
build, ``JsProject`` its install step, ``UvProject`` test. Anything else is
a ``TypeError``.
"""

from __future__ import annotations

import sys

from ._step import Step

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def _toolchain_class(module: str, name: str) -> Any:
    # A toolchain object exists only once its module is imported: no need to import it here.
    loaded = sys.modules.get(module)
    return getattr(loaded, name, None) if loaded is not None else None


def _one(obj: Any) -> tuple[Step, ...]:
    if isinstance(obj, Step):
        return (obj,)
    rust_project = _toolchain_class("harmont._rust", "RustProject")
    if rust_project is not None and isinstance(obj, rust_project):
        return (obj.test(), obj.clippy(), obj.fmt())
    rust_toolchain = _toolchain_class("harmont._rust", "RustToolchain")
    if rust_toolchain is not None and isinstance(obj, rust_toolchain):
        return (obj.build(),)
    js_project = _toolchain_class("harmont._js", "JsProject")
    if js_project is not None and isinstance(obj, js_project):
        return (obj.install(),)
    uv_project = _toolchain_class("harmont.py.uv", "UvProject")
    if uv_project is not None and isinstance(obj, uv_project):
        return (obj.test(),)
    if isinstance(obj, (tuple, list)):
        return as_leaves(obj)
    raise TypeError(
        f"hm.target: cannot use {type(obj).__name__} as a pipeline leaf\n"
        "  → return one of: Step, tuple[Step, ...], RustProject, RustToolchain, "
        "JsProject, UvProject"
    )


def as_leaves(obj: object) -> tuple[Step, ...]:
    """``obj``'s leaf steps, in order; nested tuples and lists flattened."""
    if isinstance(obj, (tuple, list)):
        out: list[Step] = []
        for item in obj:
            out.extend(_one(item))
        return tuple(out)
    return _one(obj)
