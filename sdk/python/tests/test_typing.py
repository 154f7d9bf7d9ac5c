"""The package is typed (``py.typed``): it passes ``mypy --strict``, and Harmont's examples
type-check against it."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

SDK_DIR = Path(__file__).resolve().parent.parent
CORPUS = SDK_DIR.parent.parent.parent / "shared" / "harmont"


def mypy(args, cwd, cache):
    try:
        import mypy  # noqa: F401
    except ImportError:
        if os.environ.get("CI") == "true":
            pytest.fail("CI=true but mypy is not installed")
        pytest.skip("mypy is not installed")
    return subprocess.run(
        [sys.executable, "-m", "mypy", "--cache-dir", str(cache), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env={**os.environ, "MYPYPATH": str(SDK_DIR)},
    )


def test_the_sdk_passes_mypy_strict(tmp_path):
    done = mypy(["--strict", "harmont"], SDK_DIR, tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr


def test_harmonts_examples_type_check(tmp_path):
    if not CORPUS.is_dir():
        pytest.skip(f"Harmont's conformance corpus is not at {CORPUS}")
    files = []
    for example in sorted((CORPUS / "examples").iterdir()):
        target = tmp_path / (example.name.replace("-", "_") + ".py")
        shutil.copy(example / ".hm" / "pipeline.py", target)
        files.append(target.name)
    done = mypy(files, tmp_path, tmp_path / "cache")
    assert done.returncode == 0, done.stdout + done.stderr
