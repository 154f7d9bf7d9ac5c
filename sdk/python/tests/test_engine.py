"""``harmont._engine`` run the way hm runs it: ``python3 FLAGS -c BOOTSTRAP SDK PYCACHE ROOT FILE...``."""

import json
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
    match = re.search(r"const FLAGS: &\[&str\] = &\[(.*?)\];", PYTHON_RS.read_text(), re.S)
    assert match, f"no FLAGS constant in {PYTHON_RS}"
    return re.findall(r'"([^"]*)"', match.group(1))


class Project:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.hm_dir = root / ".hm"
        self.hm_dir.mkdir(parents=True)
        self.pycache = root.parent / "pycache"
        self.stderr = ""

    def write(self, name: str, source: str) -> Path:
        path = self.hm_dir / name
        path.write_text(textwrap.dedent(source).lstrip("\n"))
        return path

    def run(self, *names: str, code: str | None = None) -> dict:
        """The engine's one-line JSON reply (``code`` replaces the bootstrap's last line)."""
        script = bootstrap()
        if code is not None:
            script = script.replace("sys.exit(main(sys.argv[3:]))", code)
        done = subprocess.run(
            [sys.executable, *flags(), "-c", script, str(SDK_DIR), str(self.pycache), str(self.root)]
            + [str(self.hm_dir / n) for n in names],
            cwd=self.root,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        self.stderr = done.stderr
        assert done.stdout.endswith("\n") and done.stdout.count("\n") == 1, f"not one line: {done.stdout!r}"
        return json.loads(done.stdout)

    def error(self, *names: str) -> dict:
        reply = self.run(*names)
        assert set(reply) == {"error"}, reply
        return reply["error"]


@pytest.fixture
def project(tmp_path):
    return Project(tmp_path / "project")


def test_the_bootstrap_is_found():
    assert "from harmont._engine import main" in bootstrap()


def test_the_envelope_and_sources(project):
    project.write(
        "pipeline.py",
        """
        import harmont as hm

        print("printed while importing")

        @hm.pipeline("ci", triggers=[hm.push(branch="main")])
        def ci():
            print("printed while rendering")
            return hm.sh("make", key="make", cache=hm.forever())
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
                    "triggers": [{"event": "push", "branches": ["main"]}],
                    "definition": {
                        "version": "0",
                        "graph": {
                            "nodes": [
                                {
                                    # No cache.key: hm computes its own.
                                    "step": {
                                        "key": "make",
                                        "cmd": "make",
                                        "cache": {"policy": "forever", "env_keys": []},
                                        "image": "ubuntu:24.04",
                                    },
                                    "env": {"DEBIAN_FRONTEND": "noninteractive", "TERM": "dumb"},
                                }
                            ],
                            "node_holes": [],
                            "edge_property": "directed",
                            "edges": [],
                        },
                    },
                }
            ],
        },
        "sources": [{"file": ".hm/pipeline.py", "line": 5, "column": 1}],
    }
    assert "printed while importing" in project.stderr
    assert "printed while rendering" in project.stderr


def test_timeouts_and_continue_on_failure_reach_the_envelope(project):
    project.write(
        "pipeline.py",
        """
        import harmont as hm

        @hm.pipeline(timeout="1h")
        def ci():
            a = hm.timeout("30s", hm.sh("a", label="a"))
            return [a, hm.wait(continue_on_failure=True), hm.sh("b", label="b")]
        """,
    )
    definition = project.run("pipeline.py")["envelope"]["pipelines"][0]["definition"]
    assert definition["timeout_seconds"] == 3600
    a, b = (n["step"] for n in definition["graph"]["nodes"])
    assert a["timeout_seconds"] == 30 and "continue_on_failure" not in a
    assert b["continue_on_failure"] is True
    assert definition["graph"]["edges"] == [[0, 1, "depends_on"]]


def test_several_files_and_a_shared_module(project):
    project.write("common.py", "import harmont as hm\n\n@hm.target()\ndef base():\n    return hm.sh('base', label='base')\n")
    project.write("a.py", "import harmont as hm\nimport common\n\n@hm.pipeline('a')\ndef a(base: hm.Target[hm.Step]):\n    return base.sh('a')\n")
    project.write("b.py", "import harmont as hm\nimport common\n\n@hm.pipeline('b')\ndef b(base: hm.Target):\n    return base.sh('b')\n")
    reply = project.run("a.py", "b.py", "common.py")
    assert [p["slug"] for p in reply["envelope"]["pipelines"]] == ["a", "b"]
    assert reply["sources"] == [{"file": ".hm/a.py", "line": 4, "column": 1}, {"file": ".hm/b.py", "line": 4, "column": 1}]


def test_an_exception_names_the_innermost_user_frame(project):
    project.write(
        "pipeline.py",
        """
        import harmont as hm


        def helper():
            return {}['missing']


        @hm.pipeline("ci")
        def ci():
            return helper()
        """,
    )
    error = project.error("pipeline.py")
    assert (error["kind"], error["file"], error["line"], error["column"]) == ("exception", ".hm/pipeline.py", 5, 12)
    assert error["message"] == "KeyError: 'missing'"
    assert 'File ".hm/pipeline.py", line 10, in ci' in error["traceback"]
    assert 'File ".hm/pipeline.py", line 5, in helper' in error["traceback"]
    assert "harmont" not in error["traceback"].replace(".hm/", "")


def test_without_frame_columns_an_error_has_no_column_of_the_pipelines_line(project):
    """Python 3.10's frames have no column: the error's line is the frame's, and the
    pipeline's own column (its decorator's) must not be put next to it."""
    project.write(
        "pipeline.py",
        """
        import harmont as hm

        @hm.pipeline("ci")
        def ci():
            x = 1
            return hm.sh("make", lable="x")
        """,
    )
    code = (
        "import traceback\n"
        "extract = traceback.extract_tb\n"
        "def without_columns(tb, limit=None):\n"
        "    frames = extract(tb, limit)\n"
        "    for frame in frames:\n"
        "        frame.colno = None\n"
        "    return frames\n"
        "traceback.extract_tb = without_columns\n"
        "sys.exit(main(sys.argv[3:]))"
    )
    reply = project.run("pipeline.py", code=code)
    error = reply["error"]
    assert (error["file"], error["line"]) == (".hm/pipeline.py", 6)
    assert "column" not in error, error


def test_an_sdk_error_points_at_the_users_call(project):
    project.write("pipeline.py", "import harmont as hm\n\nx = 1\nhm.sh('make', cwd='')\n")
    error = project.error("pipeline.py")
    assert (error["file"], error["line"], error["column"]) == (".hm/pipeline.py", 4, 1)
    assert error["message"].startswith("ValueError: hm: cwd must be a non-empty path\n")
    assert "_step.py" not in error["traceback"]


def test_an_error_raised_by_the_sdk_while_rendering_names_the_pipeline(project):
    project.write(
        "pipeline.py",
        """
        import harmont as hm


        @hm.pipeline("broken")
        def broken():
            return 42
        """,
    )
    error = project.error("pipeline.py")
    # No frame of the user's is running: the pipeline's own line.
    assert (error["file"], error["line"]) == (".hm/pipeline.py", 4)
    assert error["column"] == 1
    assert error["message"].startswith("TypeError: pipeline 'broken': invalid return value\n  → hm.target: cannot use int")


def test_target_errors(project):
    project.write(
        "pipeline.py",
        """
        import harmont as hm

        @hm.pipeline("ci")
        def ci(missing: hm.Target[hm.Step]):
            return missing
        """,
    )
    error = project.error("pipeline.py")
    assert error["message"].startswith("TypeError: hm: target 'missing' not found")
    assert error["line"] == 3


def test_a_bad_signature_is_reported_at_the_decorator(project):
    project.write("pipeline.py", "import harmont as hm\n\n\n@hm.pipeline('ci')\ndef ci(x):\n    return hm.sh('x')\n")
    error = project.error("pipeline.py")
    assert error["line"] == 4
    assert error["message"].startswith("TypeError: hm: parameter 'x' has no marker and no default")


def test_a_syntax_error(project):
    project.write("pipeline.py", "import harmont as hm\n\n@hm.pipeline\ndef ci(:\n    pass\n")
    error = project.error("pipeline.py")
    assert (error["kind"], error["file"], error["line"], error["column"]) == ("syntax", ".hm/pipeline.py", 4, 8)
    assert "SyntaxError" in error["traceback"]


def test_an_environment_value_that_is_no_string_is_refused(project):
    project.write("pipeline.py", "import harmont as hm\n\n@hm.pipeline('ci', env={'N': 1})\ndef ci():\n    return hm.sh('x', key='x')\n")
    error = project.error("pipeline.py")
    assert error["message"] == "TypeError: pipeline 'ci': step 'x': env 'N' must map a string to a string, got int"
    project.write("pipeline.py", "import harmont as hm\n\n@hm.pipeline('ci', env={2: 'x'})\ndef ci():\n    return hm.sh('x', key='x')\n")
    error = project.error("pipeline.py")
    assert error["message"] == "TypeError: pipeline 'ci': step 'x': env 2 must map a string to a string, got int"


def test_duplicate_slugs_across_files(project):
    project.write("a.py", "import harmont as hm\nhm.pipeline('ci')(lambda: hm.sh('a'))\n")
    project.write("b.py", "import harmont as hm\n\n\nhm.pipeline('ci')(lambda: hm.sh('b'))\n")
    error = project.error("a.py", "b.py")
    assert (error["file"], error["line"]) == (".hm/b.py", 4)
    assert error["message"].startswith("ValueError: duplicate pipeline slug 'ci'")


def test_the_reply_is_compact_ascii_json(project):
    project.write("pipeline.py", "import harmont as hm\nhm.pipeline('ci')(lambda: hm.sh('échο', key='k'))\n")
    raw = subprocess.run(
        [sys.executable, *flags(), "-c", bootstrap(), str(SDK_DIR), str(project.pycache), str(project.root), str(project.hm_dir / "pipeline.py")],
        cwd=project.root,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert raw.isascii() and ", " not in raw
    assert json.loads(raw)["envelope"]["pipelines"][0]["definition"]["graph"]["nodes"][0]["step"]["cmd"] == "échο"


def test_the_encoder_matches_json_dumps():
    from harmont._engine import dumps

    value = {"a": [1, -2.5, 1e300, True, False, None, "é\n\"\\", {"b": []}], "": {}}
    assert dumps(value) == json.dumps(value, separators=(",", ":"))
    with pytest.raises(TypeError, match="Object of type set is not JSON serializable"):
        dumps({"a": {1}})


def test_a_plain_pipeline_imports_no_slow_module(project):
    """Start-up is most of a render: the modules below each cost milliseconds."""
    project.write(
        "pipeline.py",
        """
        import harmont as hm

        @hm.target()
        def base():
            return hm.sh("apt-get update", label="base", cache=hm.on_change("x"))

        @hm.pipeline("ci", env={"CI": "1"}, timeout="1h")
        def ci():
            return [base().sh("a", label="a"), hm.wait(), base().sh("b", env={"X": "1"})]
        """,
    )
    code = (
        "main(sys.argv[3:])\n"
        "slow = sorted({'typing', 're', 'json', 'dataclasses', 'inspect', 'functools', 'hashlib', 'datetime', "
        "'pathlib', 'importlib.util', 'contextlib', 'enum'} & set(sys.modules))\n"
        "sys.stderr.write('SLOW=' + ','.join(slow) + '\\n')"
    )
    project.run("pipeline.py", code=code)
    assert "SLOW=\n" in project.stderr, project.stderr
