"""Harmont's 14 example pipelines render exactly as Harmont renders them.

The corpus is ``compat/harmont`` in the repository
(``examples/<name>/.hm/pipeline.py`` and ``expected/<name>.json``). Each
example is rendered by hm's engine in a copy of the example, and compared
with Harmont's render in every field but ``cache.key`` (hm computes its own
keys), key order aside. ``hm.dump_registry_json()``, which user code may
call, is compared whole, ``cache.key`` included.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import strip_cache_keys

SDK_DIR = Path(__file__).resolve().parent.parent
CORPUS = SDK_DIR.parent.parent / "compat" / "harmont"
EXAMPLES = sorted(p.name for p in (CORPUS / "examples").iterdir()) if CORPUS.is_dir() else []


def test_the_corpus_is_there():
    if not CORPUS.is_dir():
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true but Harmont's conformance corpus is missing: {CORPUS}")
        pytest.skip(f"Harmont's conformance corpus is not at {CORPUS}: the examples are not checked")
    assert len(EXAMPLES) == 14


def copy_example(name: str, tmp_path: Path) -> Path:
    root = tmp_path / name
    shutil.copytree(CORPUS / "examples" / name, root)
    for f in (root / ".hm").iterdir():
        if f.suffix != ".py":
            f.unlink()
    return root


def engine_render(root: Path) -> dict:
    files = sorted(str(f) for f in (root / ".hm").glob("*.py"))
    bootstrap = (
        "import sys\nsys.path.insert(0, sys.argv[1])\nfrom harmont._engine import main\nsys.exit(main(sys.argv[2:]))\n"
    )
    done = subprocess.run(
        [sys.executable, "-I", "-S", "-c", bootstrap, str(SDK_DIR), str(root), *files],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    reply = json.loads(done.stdout)
    assert "error" not in reply, reply
    return reply["envelope"]


@pytest.mark.parametrize("name", EXAMPLES)
def test_the_engine_renders_like_harmont(name, tmp_path):
    expected = strip_cache_keys(json.loads((CORPUS / "expected" / f"{name}.json").read_text()))
    envelope = engine_render(copy_example(name, tmp_path))
    assert "'key': " not in repr([n["step"].get("cache") for p in envelope["pipelines"] for n in p["definition"]["graph"]["nodes"]])
    assert envelope == expected


# The expected renders were made within one UTC day: the day of this ttl window.
RENDER_DAY = 20788


@pytest.mark.parametrize("name", EXAMPLES)
def test_dump_registry_json_renders_like_harmont_keys_included(name, tmp_path):
    root = copy_example(name, tmp_path)
    code = (
        "import runpy, sys\n"
        "sys.path.insert(0, sys.argv[1])\n"
        "import harmont as hm\n"
        "runpy.run_path(sys.argv[2])\n"
        "print(hm.dump_registry_json(now=int(sys.argv[3]), env={}))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(SDK_DIR), str(root / ".hm" / "pipeline.py"), str(RENDER_DAY * 86400)],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    expected = json.loads((CORPUS / "expected" / f"{name}.json").read_text())
    assert json.loads(done.stdout) == expected
