"""Harmont's cache keys, from ``hm.pipeline_to_json``, ``hm.dump_registry_json`` and ``keygen``."""

import hashlib
import json
from datetime import timedelta
from pathlib import Path

import pytest

import harmont as hm
from harmont.json_emit import pipeline_to_json
from harmont.keygen import resolve_pipeline_keys


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def key(org, slug, step_key, parent, part):
    return sha("\0".join([org, slug, step_key, parent, part]))


def cache_keys(text):
    return {n["step"]["key"]: n["step"].get("cache", {}).get("key") for n in json.loads(text)["graph"]["nodes"]}


def test_forever_ttl_and_parents(tmp_path):
    root = hm.sh("apt", label="apt", cache=hm.forever(env_keys=("B", "A")))
    child = root.sh("build", label="build", cache=hm.ttl(timedelta(hours=1)))
    text = pipeline_to_json(
        hm.pipeline([child.sh("plain", label="plain")]),
        pipeline_org="acme",
        pipeline_slug="ci",
        now=7300,
        base_path=tmp_path,
        env={"A": "1"},
    )
    apt = key("acme", "ci", "apt", "scratch", "forever-" + sha("apt\0A=1\0B=\0"))
    build = key("acme", "ci", "build", apt, "ttl-2-" + sha("build\0"))
    assert cache_keys(text) == {"apt": apt, "build": build, "plain": None}


def test_on_change_hashes_files_globs_and_directories(tmp_path):
    (tmp_path / "a.txt").write_bytes(b"hello")
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "x.py").write_bytes(b"x")
    (tmp_path / "src" / "y.py").write_bytes(b"y")
    (tmp_path / "dir").mkdir()
    (tmp_path / "dir" / "f").write_bytes(b"f")
    step = hm.sh("make", label="m", cache=hm.on_change("src/*.py", "a.txt", "missing.txt", "dir"))
    text = pipeline_to_json(hm.pipeline([step]), now=0, base_path=tmp_path, env={})
    dir_hash = hashlib.sha256(b"f\0f\0").hexdigest()  # relative path, NUL, bytes, NUL
    files = [
        hashlib.sha256(b"hello").hexdigest(),  # "a.txt" sorts first
        dir_hash,
        hashlib.sha256(b"x").hexdigest(),
        hashlib.sha256(b"y").hexdigest(),
    ]
    part = "sha-" + sha("".join(f + "\0" for f in files))
    assert cache_keys(text)["m"] == key("default", "default", "m", "scratch", part)


def test_compose_and_none(tmp_path):
    step = hm.sh("x", label="x", cache=hm.compose(hm.cache.CacheNone(), hm.forever()))
    text = pipeline_to_json(hm.pipeline([step]), now=0, base_path=tmp_path, env={})
    part = "compose-" + sha("none" + "forever-" + sha("x\0"))
    assert cache_keys(text)["x"] == key("default", "default", "x", "scratch", part)
    none = pipeline_to_json(hm.pipeline([hm.sh("y", label="y", cache=hm.cache.CacheNone())]), env={})
    assert json.loads(none)["graph"]["nodes"][0]["step"]["cache"] == {"policy": "none"}


def test_defaults_come_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    step = hm.sh("x", label="x", cache=hm.forever())
    text = pipeline_to_json(hm.pipeline([step]), env={"HM_PIPELINE_ORG": "o", "HM_PIPELINE_SLUG": "s"})
    assert cache_keys(text)["x"] == key("o", "s", "x", "scratch", "forever-" + sha("x\0"))


def test_pipeline_to_json_leaves_its_argument_alone_and_writes_harmonts_layout():
    ir = hm.pipeline([hm.sh("é", label="e", cache=hm.forever())])
    text = hm.pipeline_to_json(ir, now=0, env={})
    assert "key" not in ir["graph"]["nodes"][0]["step"]["cache"]
    assert text.startswith('{"version": "0", "graph": {"nodes": [{"step": {"key": "e", "cmd": "é"')


def test_a_cached_step_under_an_uncached_one_has_no_key():
    step = hm.sh("a", label="a").sh("b", label="b", cache=hm.forever())
    with pytest.raises(ValueError, match="step references builds_in 'a' which has no cached key"):
        pipeline_to_json(hm.pipeline([step]), env={})


def test_a_missing_directory_or_file_inside_a_glob_is_left_out(tmp_path):
    graph = {
        "nodes": [{"step": {"key": "a", "cmd": "c", "cache": {"policy": "on_change", "paths": ["nope/*", "gone"]}}, "env": {}}],
        "edges": [],
    }
    resolve_pipeline_keys(graph, pipeline_org="o", pipeline_slug="s", now=0, base_path=tmp_path, env={})
    assert graph["nodes"][0]["step"]["cache"]["key"] == key("o", "s", "a", "scratch", "sha-" + sha(""))


def test_unknown_policies_in_an_ir_are_refused():
    graph = {"nodes": [{"step": {"key": "a", "cmd": "c", "cache": {"policy": "when"}}, "env": {}}], "edges": []}
    with pytest.raises(ValueError, match="resolve-policy-key: unknown policy 'when'"):
        resolve_pipeline_keys(graph, pipeline_org="o", pipeline_slug="s", now=0, base_path=Path("/"), env={})


def test_dump_registry_json_keys_each_pipeline_under_its_slug(tmp_path):
    hm.pipeline("ci")(lambda: hm.sh("x", label="x", cache=hm.forever()))
    text = hm.dump_registry_json(pipeline_org="acme", now=0, base_path=tmp_path, env={})
    step = json.loads(text)["pipelines"][0]["definition"]["graph"]["nodes"][0]["step"]
    assert step["cache"]["key"] == key("acme", "ci", "x", "scratch", "forever-" + sha("x\0"))
