"""What ``hm`` runs: imports a project's ``.hm/*.py`` files, renders every pipeline and prints one
JSON object on stdout, ``{"envelope": ..., "sources": [...]}`` or ``{"error": {...}}``.

User code may print freely: its stdout goes to stderr while it runs."""

from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import json
import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from types import ModuleType, TracebackType
    from typing import Any

from . import _errors
from ._errors import HarmontError
from ._pipeline import PIPELINES, render_pipeline
from ._target import Render

SDK_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class Failure(Exception):
    """Evaluation stopped; ``info`` is what hm reports."""

    def __init__(self, info: dict[str, Any]) -> None:
        super().__init__(info.get("message", ""))
        self.info = info


class Engine:
    def __init__(self, root: str, files: list[str]) -> None:
        self.root = os.path.realpath(root)
        self.hm_dir = os.path.join(self.root, ".hm")
        self.files = files

    def rel(self, path: str) -> str:
        try:
            real = os.path.realpath(path)
        except (TypeError, ValueError):
            return path
        if real == self.root or real.startswith(self.root + os.sep):
            return os.path.relpath(real, self.root)
        return path

    def is_user_file(self, path: str) -> bool:
        if not os.path.isabs(path):  # "<frozen importlib._bootstrap>", "<string>"
            return False
        real = os.path.realpath(path)
        if real.startswith(SDK_DIR + os.sep):
            return False
        return real.startswith(self.root + os.sep)

    def failure(self, file: str, exc: BaseException) -> Failure:
        """The report of ``exc``, raised while evaluating ``file``, with only the user's frames."""
        import traceback

        if isinstance(exc, SyntaxError) and exc.filename and self.is_user_file(exc.filename):
            exc.filename = self.rel(exc.filename)
            text = "".join(traceback.format_exception_only(type(exc), exc)).rstrip("\n")
            return Failure(
                {
                    "kind": "syntax",
                    "file": exc.filename,
                    "line": exc.lineno,
                    "column": exc.offset,
                    "message": exc.msg,
                    "traceback": text,
                }
            )
        tb: TracebackType | None = exc.__traceback__
        frames = [f for f in traceback.extract_tb(tb) if self.is_user_file(f.filename)]
        for frame in frames:
            frame.filename = self.rel(frame.filename)
        lines = ["Traceback (most recent call last):\n"] if frames else []
        lines += traceback.format_list(frames)
        name = "HarmontError" if isinstance(exc, HarmontError) else type(exc).__qualname__
        message = str(exc)
        lines.append(f"{name}: {message}" if message else name)
        last = frames[-1] if frames else None
        return Failure(
            {
                "kind": "definition" if isinstance(exc, HarmontError) else "exception",
                "file": last.filename if last else file,
                "line": last.lineno if last else None,
                "message": f"{name}: {message}" if message else name,
                "traceback": "".join(lines).rstrip("\n"),
            }
        )

    def import_file(self, path: str) -> ModuleType:
        """Imports ``path`` under its own module name, so a file another one imports runs once."""
        stem = os.path.splitext(os.path.basename(path))[0]
        if stem.isidentifier() and os.path.dirname(os.path.realpath(path)) == os.path.realpath(self.hm_dir):
            if stem in sys.modules and not _defined_in(sys.modules[stem], path):
                raise HarmontError(
                    f"`{self.rel(path)}` has the name of the module `{stem}` that is already imported; rename it"
                )
            return importlib.import_module(stem)
        name = "_hm_pipeline_" + "".join(c if c.isalnum() else "_" for c in stem)
        spec = importlib.util.spec_from_file_location(name, path, loader=FreshSource(name, path))
        if spec is None or spec.loader is None:
            raise HarmontError(f"cannot import `{self.rel(path)}`")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
        return module

    def evaluate(self) -> dict[str, Any]:
        for path in self.files:
            try:
                self.import_file(path)
            except (Exception, SystemExit) as exc:
                raise self.failure(self.rel(path), exc) from None
        render = Render()
        pipelines = []
        sources = []
        for defn in PIPELINES:
            code = getattr(defn.fn, "__code__", None)
            source = self.rel(code.co_filename) if code else "?"
            try:
                pipelines.append(render_pipeline(defn, render))
            except (Exception, SystemExit) as exc:
                raise self.failure(source, exc) from None
            sources.append(source)
        return {"envelope": {"schema_version": "1", "pipelines": pipelines}, "sources": sources}


class FreshSource(importlib.machinery.SourceFileLoader):
    """Compiles project files from their source every time. Python's bytecode cache goes by
    modification time and size, so an edit within the same second that keeps the size would be
    served stale; the SDK's own bytecode is cached (its directory never changes)."""

    def get_code(self, fullname: str) -> Any:
        source = self.get_data(self.path)
        return compile(source, self.path, "exec", dont_inherit=True)


def project_path_hook(hm_dir: str) -> Any:
    """A ``sys.path_hooks`` entry that imports modules under ``hm_dir`` with :class:`FreshSource`
    and leaves every other directory to the standard finders."""
    finder = importlib.machinery.FileFinder.path_hook(
        (FreshSource, importlib.machinery.SOURCE_SUFFIXES)
    )

    def hook(path: str) -> Any:
        if path == hm_dir or path.startswith(hm_dir + os.sep):
            return finder(path)
        raise ImportError("not a project directory")

    return hook


class SiteOnDemand:
    """Last on ``sys.meta_path``: hm starts Python without ``site``; the first import of a
    top-level module that nothing else finds adds the site directories and looks again."""

    loaded = False

    @classmethod
    def find_spec(cls, name: str, path: Any = None, target: Any = None) -> Any:
        if cls.loaded or path is not None:
            return None
        cls.loaded = True
        import site

        site.main()
        return importlib.machinery.PathFinder.find_spec(name, path, target)


def _defined_in(module: ModuleType, path: str) -> bool:
    file = getattr(module, "__file__", None)
    return isinstance(file, str) and os.path.realpath(file) == os.path.realpath(path)


def main(argv: list[str]) -> int:
    """``argv``: the project root, then the pipeline files to import in order."""
    root, files = argv[0], argv[1:]
    engine = Engine(root, files)
    _errors.project_root[:] = [engine.root]
    sys.path.insert(0, engine.hm_dir)
    sys.path_hooks.insert(0, project_path_hook(engine.hm_dir))
    sys.path_importer_cache.pop(engine.hm_dir, None)
    if sys.flags.no_site:
        sys.meta_path.append(SiteOnDemand)
    # The reply alone goes to the real stdout; while user code runs, file descriptor 1 is
    # stderr, so its prints and its subprocesses' output go there.
    sys.stdout.flush()
    reply = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    try:
        result = engine.evaluate()
    except Failure as failure:
        result = {"error": failure.info}
    sys.stderr.flush()
    # One `dumps`: `json.dump` would encode in pure Python, chunk by chunk.
    reply.write(json.dumps(result, separators=(",", ":")) + "\n")
    reply.close()
    return 0
