"""harmont._engine run the way hm runs it: ``python3 FLAGS -c BOOTSTRAP SDK PYCACHE ROOT FILE...``."""

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

SDK_DIR = Path(__file__).resolve().parent.parent
PYTHON_RS = SDK_DIR.parent.parent / "crates" / "hm-dsl" / "src" / "python.rs"


def bootstrap() -> str:
    """The BOOTSTRAP constant of hm's Rust side, read from its source so the two cannot drift."""
    match = re.search(r'const BOOTSTRAP: &str = r#"(.*?)"#;', PYTHON_RS.read_text(), re.S)
    assert match, f"no BOOTSTRAP constant in {PYTHON_RS}"
    return match.group(1)


def flags() -> list[str]:
    """The interpreter flags of hm's Rust side (the FLAGS constant)."""
    match = re.search(r"const FLAGS: &\[&str\] = &\[(.*?)\];", PYTHON_RS.read_text(), re.S)
    assert match, f"no FLAGS constant in {PYTHON_RS}"
    return re.findall(r'"([^"]*)"', match.group(1))


class Project:
    """A project directory with a ``.hm/`` folder."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.hm_dir = root / ".hm"
        self.hm_dir.mkdir(parents=True)
        self.pycache = root.parent / "pycache"
        self.stderr = ""

    def write(self, name: str, source: str) -> Path:
        path = self.hm_dir / name
        path.write_text(textwrap.dedent(source))
        return path

    def run_raw(self, *names: str) -> str:
        """Evaluates ``.hm/NAME...`` in order; the engine's stdout."""
        files = [str(self.hm_dir / name) for name in names]
        done = subprocess.run(
            [sys.executable, *flags(), "-c", bootstrap(), str(SDK_DIR), str(self.pycache), str(self.root), *files],
            cwd=self.root,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        self.stderr = done.stderr
        return done.stdout

    def run(self, *names: str) -> dict:
        """The engine's one-line JSON reply."""
        stdout = self.run_raw(*names)
        assert stdout.endswith("\n") and stdout.count("\n") == 1, f"not one line: {stdout!r}"
        return json.loads(stdout)


@pytest.fixture
def project(tmp_path):
    return Project(tmp_path / "project")


def test_bootstrap_is_found():
    text = bootstrap()
    assert "from harmont._engine import main" in text
    assert "sys.pycache_prefix = sys.argv[2]" in text


def test_envelope_and_sources(project):
    project.write(
        "pipeline.py",
        """
        import harmont as hm

        print("printed while importing")

        @hm.pipeline(triggers=[hm.push(branch="main")])
        def ci():
            print("printed while rendering")
            return hm.sh("make", key="make")
        """,
    )
    reply = project.run("pipeline.py")
    assert reply == {
        "envelope": {
            "schema_version": "1",
            "pipelines": [
                {
                    "slug": "ci",
                    "name": "ci",
                    "allow_manual": True,
                    "triggers": [{"type": "push", "branches": ["main"]}],
                    "definition": {
                        "version": "0",
                        "nodes": [
                            {
                                "step": {"key": "make", "cmd": "make", "image": "ubuntu:24.04"},
                                "env": {"DEBIAN_FRONTEND": "noninteractive", "TERM": "dumb"},
                            }
                        ],
                        "node_holes": [],
                        "edge_property": "directed",
                        "edges": [],
                    },
                }
            ],
        },
        "sources": [".hm/pipeline.py"],
    }
    assert "printed while importing" in project.stderr
    assert "printed while rendering" in project.stderr


def test_user_output_stays_off_stdout(project):
    project.write(
        "pipeline.py",
        """
        import os
        import sys
        import harmont as hm

        print("MARK-1")
        sys.stdout.write("MARK-2\\n")
        sys.stdout.flush()
        os.system("echo MARK-4")

        @hm.pipeline
        def ci():
            print("MARK-3", file=sys.stdout)
            return hm.sh("make")
        """,
    )
    stdout = project.run_raw("pipeline.py")
    assert "MARK" not in stdout
    assert stdout.endswith("}\n") and stdout.count("\n") == 1
    assert list(json.loads(stdout)) == ["envelope", "sources"]
    assert [line for line in project.stderr.splitlines() if line.startswith("MARK")] == ["MARK-1", "MARK-2", "MARK-4", "MARK-3"]


def test_bytecode_goes_to_the_pycache_dir(project):
    project.write("common.py", "VALUE = 1\n")
    project.write("pipeline.py", "import common\n")
    project.run("pipeline.py")
    assert not (project.hm_dir / "__pycache__").exists()
    # The SDK's bytecode is cached; project files are compiled afresh every time.
    assert any(project.pycache.rglob("_pipeline*.pyc"))
    assert not any(project.pycache.rglob("common*.pyc"))


def test_an_edit_within_the_same_second_is_seen(project):
    # Same size, same second: a bytecode cache keyed by mtime would serve the old file.
    common = project.write("common.py", "VALUE = 'a'\n")
    project.write(
        "pipeline.py",
        """
        import common
        import harmont as hm

        @hm.pipeline
        def ci():
            return hm.sh("echo " + common.VALUE)
        """,
    )
    first = project.run("pipeline.py")
    stat = common.stat()
    common.write_text("VALUE = 'b'\n")
    os.utime(common, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    second = project.run("pipeline.py")
    cmd = lambda reply: reply["envelope"]["pipelines"][0]["definition"]["nodes"][0]["step"]["cmd"]
    assert (cmd(first), cmd(second)) == ("echo a", "echo b")


def test_exception_traceback_has_only_user_frames(project):
    project.write(
        "pipeline.py",
        """
        import harmont as hm

        def load_settings():
            raise ValueError("no settings file")

        load_settings()
        """,
    )
    error = project.run("pipeline.py")["error"]
    assert error["kind"] == "exception"
    assert error["file"] == ".hm/pipeline.py"
    assert error["line"] == 5
    assert error["message"] == "ValueError: no settings file"
    traceback = error["traceback"]
    assert traceback.startswith("Traceback (most recent call last):\n")
    assert traceback.endswith("ValueError: no settings file")
    assert 'File ".hm/pipeline.py", line 7, in <module>' in traceback
    assert 'File ".hm/pipeline.py", line 5, in load_settings' in traceback
    for noise in ("harmont", "frozen importlib", "_engine", "importlib"):
        assert noise not in traceback


def test_exception_while_rendering(project):
    project.write(
        "pipeline.py",
        """
        import harmont as hm

        @hm.pipeline
        def ci():
            steps = {}
            return steps["missing"]
        """,
    )
    error = project.run("pipeline.py")["error"]
    assert error["kind"] == "exception"
    assert error["file"] == ".hm/pipeline.py"
    assert error["line"] == 7
    # Python 3.11+ underlines the failing expression; those lines vary by version.
    lines = [line for line in error["traceback"].splitlines() if line.strip(" ~^")]
    assert lines == [
        "Traceback (most recent call last):",
        '  File ".hm/pipeline.py", line 7, in ci',
        '    return steps["missing"]',
        "KeyError: 'missing'",
    ]


def test_exception_in_an_imported_file_names_that_file(project):
    project.write("helpers.py", "def broken():\n    return 1 / 0\n")
    project.write("pipeline.py", "import helpers\nhelpers.broken()\n")
    error = project.run("pipeline.py")["error"]
    assert error["kind"] == "exception"
    assert error["file"] == ".hm/helpers.py"
    assert 'File ".hm/pipeline.py", line 2, in <module>' in error["traceback"]
    assert 'File ".hm/helpers.py", line 2, in broken' in error["traceback"]
    assert error["traceback"].endswith("ZeroDivisionError: division by zero")


def test_syntax_error(project):
    project.write("pipeline.py", "import harmont as hm\n\ndef broken(:\n    pass\n")
    error = project.run("pipeline.py")["error"]
    assert error["kind"] == "syntax"
    assert error["file"] == ".hm/pipeline.py"
    assert error["line"] == 3
    assert isinstance(error["column"], int) and error["column"] >= 1
    assert error["message"]
    assert error["traceback"].startswith('  File ".hm/pipeline.py", line 3\n    def broken(:\n')
    assert error["traceback"].endswith(f"SyntaxError: {error['message']}")


def test_harmont_error_is_a_definition_error(project):
    project.write(
        "pipeline.py",
        """
        import harmont as hm

        @hm.pipeline("Bad_Slug")
        def ci():
            return hm.sh("make")
        """,
    )
    error = project.run("pipeline.py")["error"]
    assert error["kind"] == "definition"
    assert error["file"] == ".hm/pipeline.py"
    assert error["line"] == 4
    assert "invalid pipeline slug `Bad_Slug`" in error["message"]
    assert error["traceback"].endswith("HarmontError: invalid pipeline slug `Bad_Slug`: it must match ^[a-z][a-z0-9-]{0,63}$")
    assert "_pipeline.py" not in error["traceback"]


def test_harmont_error_while_rendering(project):
    project.write(
        "pipeline.py",
        """
        import harmont as hm

        @hm.pipeline
        def ci():
            return [hm.sh("a", key="k"), hm.sh("b", key="k")]
        """,
    )
    error = project.run("pipeline.py")["error"]
    assert error["kind"] == "definition"
    assert error["file"] == ".hm/pipeline.py"
    assert error["traceback"] == "HarmontError: pipeline `ci`: two steps have the key `k`; give one of them another key="


@pytest.mark.parametrize("order", [("common.py", "pipeline.py"), ("pipeline.py", "common.py")])
def test_a_file_imported_by_another_registers_once(project, order):
    project.write(
        "common.py",
        """
        import harmont as hm

        @hm.target
        def toolchain() -> hm.Step:
            return hm.sh("install", key="install", cache=hm.forever())

        @hm.pipeline
        def lint(toolchain: hm.Target[hm.Step]):
            return toolchain.sh("lint", key="lint")
        """,
    )
    project.write(
        "pipeline.py",
        """
        from __future__ import annotations

        import common
        import harmont as hm

        @hm.pipeline
        def test(toolchain: hm.Target[hm.Step]):
            return toolchain.sh("test", key="test")
        """,
    )
    reply = project.run(*order)
    assert [p["slug"] for p in reply["envelope"]["pipelines"]] == ["lint", "test"]
    assert reply["sources"] == [".hm/common.py", ".hm/pipeline.py"]


def test_a_file_not_named_like_a_module(project):
    project.write("my-pipeline.py", "import harmont as hm\nhm.pipeline('ci')(lambda: hm.sh('make'))\n")
    reply = project.run("my-pipeline.py")
    assert reply["sources"] == [".hm/my-pipeline.py"]


def test_a_file_named_like_a_loaded_module(project):
    project.write("json.py", "import harmont as hm\n")
    error = project.run("json.py")["error"]
    assert error["kind"] == "definition"
    assert "has the name of the module `json` that is already imported; rename it" in error["message"]


@pytest.mark.parametrize(
    ("call", "message"),
    [("sys.exit()", "SystemExit"), ("sys.exit(3)", "SystemExit: 3"), ("sys.exit('bye')", "SystemExit: bye")],
)
def test_sys_exit_while_importing_is_an_error(project, call, message):
    project.write("pipeline.py", f"import sys\n{call}\n")
    error = project.run("pipeline.py")["error"]
    assert error["kind"] == "exception"
    assert error["file"] == ".hm/pipeline.py"
    assert error["message"] == message
    assert error["traceback"].endswith(message)


def test_sys_exit_while_rendering_is_an_error(project):
    project.write(
        "pipeline.py",
        """
        import sys
        import harmont as hm

        @hm.pipeline
        def ci():
            sys.exit(1)
        """,
    )
    error = project.run("pipeline.py")["error"]
    assert error["kind"] == "exception"
    assert error["message"] == "SystemExit: 1"
    assert 'File ".hm/pipeline.py", line 7, in ci' in error["traceback"]
