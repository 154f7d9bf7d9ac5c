"""What ``hm`` runs: imports a project's ``.hm/*.py`` files, renders every registered pipeline
and prints one JSON line on stdout: ``{"envelope": ..., "sources": [...]}`` or
``{"error": {...}}``.

The envelope is Harmont's (``schema_version "1"``, each pipeline's IR under
``definition.graph``) without ``cache.key``: ``hm`` computes its own keys.
Each source is ``{"file", "line", "column"}``, where the pipeline's function (its first
decorator) is. An error names the innermost frame of the user's own files (``file``, ``line``,
1-based ``column`` where Python knows it) and carries a traceback of those frames only.

User code may print freely: its stdout goes to stderr while it runs.
"""

from __future__ import annotations

import importlib.machinery
import os
import sys

from ._envelope import render_registration
from ._registry import REGISTRATIONS
from ._target import clear_target_memo

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from types import CodeType, ModuleType, TracebackType
    from typing import Any

    from ._registry import PipelineRegistration

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

    def failure(self, where: dict[str, Any], exc: BaseException) -> Failure:
        """The report of ``exc``, with only the user's frames; ``where`` (a file, and a line
        if known) is the location when no frame of the user's files is involved."""
        import traceback

        if isinstance(exc, SyntaxError) and exc.filename and self.is_user_file(exc.filename):
            exc.filename = self.rel(exc.filename)
            text = "".join(traceback.format_exception_only(type(exc), exc)).rstrip("\n")
            info = {"kind": "syntax", "file": exc.filename, "line": exc.lineno, "message": exc.msg}
            if exc.offset:
                info["column"] = exc.offset
            info["traceback"] = text
            return Failure(info)
        tb: TracebackType | None = exc.__traceback__
        frames = [f for f in traceback.extract_tb(tb) if self.is_user_file(f.filename)]
        for frame in frames:
            frame.filename = self.rel(frame.filename)
        lines = ["Traceback (most recent call last):\n"] if frames else []
        lines += traceback.format_list(frames)
        name = type(exc).__qualname__
        message = str(exc)
        lines.append(f"{name}: {message}" if message else name)
        info = {"kind": "exception", **where}
        if frames:
            last = frames[-1]
            info["file"], info["line"] = last.filename, last.lineno
            # ``where``'s column belongs to its own line, not the frame's.
            info.pop("column", None)
            column = getattr(last, "colno", None)  # Python 3.11 and later; 0-based
            if column is not None:
                info["column"] = column + 1
        info["message"] = f"{name}: {message}" if message else name
        info["traceback"] = "".join(lines).rstrip("\n")
        return Failure(info)

    def import_file(self, path: str) -> ModuleType:
        """Imports ``path`` under its own module name, so a file another one imports runs once."""
        stem = os.path.splitext(os.path.basename(path))[0]
        if stem.isidentifier() and os.path.dirname(os.path.realpath(path)) == os.path.realpath(self.hm_dir):
            if stem in sys.modules and not _defined_in(sys.modules[stem], path):
                raise ImportError(
                    f"{self.rel(path)} has the name of the module {stem!r} that is already imported; "
                    "rename it"
                )
            return importlib.import_module(stem)
        name = "_hm_pipeline_" + "".join(c if c.isalnum() else "_" for c in stem)
        loader = FreshSource(name, path)
        spec = importlib._bootstrap_external.spec_from_file_location(name, path, loader=loader)
        if spec is None:
            raise ImportError(f"cannot import {self.rel(path)}")
        module = importlib._bootstrap.module_from_spec(spec)
        sys.modules[name] = module
        loader.exec_module(module)
        return module

    def source(self, reg: PipelineRegistration) -> dict[str, Any]:
        """Where ``reg``'s function is defined."""
        fn: Any = reg.fn
        while hasattr(fn, "__wrapped__"):
            fn = fn.__wrapped__
        code: CodeType | None = getattr(fn, "__code__", None)
        if code is None:
            return {"file": self.rel(self.files[0]) if self.files else "?"}
        line = code.co_firstlineno
        return {"file": self.rel(code.co_filename), "line": line, "column": _indent(code.co_filename, line) + 1}

    def evaluate(self) -> str:
        """The reply's JSON text."""
        for path in self.files:
            try:
                self.import_file(path)
            except (Exception, SystemExit) as exc:
                raise self.failure({"file": self.rel(path)}, exc) from None
        clear_target_memo()
        pipelines = []
        sources = []
        for reg in REGISTRATIONS:
            where = self.source(reg)
            try:
                entry = render_registration(reg)
                _check_strings(entry)
                pipelines.append(dumps(entry))
            except (Exception, SystemExit) as exc:
                raise self.failure(where, exc) from None
            sources.append(dumps(where))
        return (
            '{"envelope":{"schema_version":"1","pipelines":['
            + ",".join(pipelines)
            + ']},"sources":['
            + ",".join(sources)
            + "]}"
        )


def _check_strings(entry: dict[str, Any]) -> None:
    """``TypeError`` for an environment name or value that is not a string, which
    Harmont's SDK would write and no IR reader accepts (commands are checked by ``sh()``)."""
    for node in entry["definition"]["graph"]["nodes"]:
        step = node["step"]
        for name, value in node["env"].items():
            if not isinstance(name, str) or not isinstance(value, str):
                wrong = value if isinstance(name, str) else name
                raise TypeError(
                    f"pipeline {entry['slug']!r}: step {step['key']!r}: env {name!r} must map a "
                    f"string to a string, got {type(wrong).__name__}"
                )


def _not_serializable(o: object) -> Any:
    raise TypeError(f"Object of type {o.__class__.__name__} is not JSON serializable")


def _make_dumps() -> Callable[[Any], str]:
    """Compact JSON (ASCII-escaped) through the C encoder that ``json.dumps`` uses, without
    importing :mod:`json` (it imports :mod:`re`); ``json.dumps`` where that encoder is missing."""
    try:
        from _json import encode_basestring_ascii, make_encoder

        def dumps(obj: Any) -> str:
            # markers, default, encoder, indent, separators, sort_keys, skipkeys, allow_nan
            encode = make_encoder(
                {}, _not_serializable, encode_basestring_ascii, None, ":", ",", False, False, True
            )
            return "".join(encode(obj, 0))

        if dumps({"a": [1, 2.5, True, None, "\u00e9\n"]}) == '{"a":[1,2.5,true,null,"\\u00e9\\n"]}':
            return dumps
    except (ImportError, TypeError):
        pass
    import json

    return lambda obj: json.dumps(obj, separators=(",", ":"))


dumps = _make_dumps()


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
    finder = importlib.machinery.FileFinder.path_hook((FreshSource, importlib.machinery.SOURCE_SUFFIXES))

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


def _indent(path: str, line: int) -> int:
    """How far line ``line`` of ``path`` is indented (0 when it cannot be read)."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            for number, text in enumerate(f, 1):
                if number == line:
                    return len(text) - len(text.lstrip())
    except OSError:
        pass
    return 0


def _defined_in(module: ModuleType, path: str) -> bool:
    file = getattr(module, "__file__", None)
    return isinstance(file, str) and os.path.realpath(file) == os.path.realpath(path)


def main(argv: list[str]) -> int:
    """``argv``: the project root, then the pipeline files to import in order."""
    root, files = argv[0], argv[1:]
    engine = Engine(root, files)
    sys.path.insert(0, engine.hm_dir)
    sys.path_hooks.insert(0, project_path_hook(engine.hm_dir))
    sys.path_importer_cache.pop(engine.hm_dir, None)
    if sys.flags.no_site:
        sys.meta_path.append(SiteOnDemand)
    # The reply alone goes to the real stdout; while user code runs, file descriptor 1 is
    # stderr, so its prints and its subprocesses' output go to stderr.
    sys.stdout.flush()
    reply = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    try:
        text = engine.evaluate()
    except Failure as failure:
        text = dumps({"error": failure.info})
    sys.stderr.flush()
    reply.write(text + "\n")
    reply.close()
    return 0
