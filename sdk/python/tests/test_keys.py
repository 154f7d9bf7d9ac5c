"""Step keys: ``key=``, label slugs, hashed fallbacks."""

import pytest
from helpers import hashed_key, keys

import harmont as hm
from harmont._keys import hash_key, resolve_keys, slugify_label


@pytest.mark.parametrize(
    ("label", "slug"),
    [
        (":rust: api build", "api-build"),
        ("API Build (Test)", "api-build-test"),
        ("foo  --  bar", "foo-bar"),
        (":fire: !!! foo !!!", "foo"),
        (":fire:", ""),
        ("", ""),
        ("Café Build", "caf-build"),
        ("构建", ""),
        (":zig: zig-a build", "zig-a-build"),
        ("a:b:c", "a c".replace(" ", "-")),
        ("x :not closed", "x-not-closed"),
        ("::", ""),
        (":a::b:", ""),
        (":A: up", "up"),
        ("v1.2 :+1: ok", "v1-2-ok"),
    ],
)
def test_slugify(label, slug):
    assert slugify_label(label) == slug


def test_hash_key_is_sha256_of_parent_command_and_position():
    assert hash_key("parent", "make build", 3) == hashed_key("parent", "make build", 3)
    assert len({hash_key("p", "m", 0), hash_key("p", "m", 1), hash_key("q", "m", 0), hash_key("p", "n", 0)}) == 4


def test_key_override_then_unique_slug_then_hash():
    root = hm.scratch()
    a = root.sh("make a", key="explicit")
    b = root.sh("make b", label=":rust: build")
    c = root.sh("make c")
    result = resolve_keys([a, b, c])
    assert result[id(a)] == "explicit"
    assert result[id(b)] == "build"
    assert result[id(c)] == hashed_key("", "make c", 2)


def test_colliding_labels_both_fall_back_to_hashes():
    a = hm.sh("make a", label="build")
    b = hm.sh("make b", label="Build!")
    result = resolve_keys([a, b])
    assert result[id(a)] == hashed_key("", "make a", 0)
    assert result[id(b)] == hashed_key("", "make b", 1)


def test_a_key_override_claims_its_own_label_slug_too():
    a = hm.sh("make a", label="build", key="mine")
    b = hm.sh("make b", label="build")
    result = resolve_keys([a, b])
    assert result[id(a)] == "mine"
    assert result[id(b)] != "build"


def test_an_override_reserves_its_key_against_slugs():
    a = hm.sh("make a", key="build")
    b = hm.sh("make b", label="build")
    assert resolve_keys([a, b])[id(b)] == hashed_key("", "make b", 1)


def test_the_hash_takes_the_direct_parents_key_only():
    base = hm.sh("install", label="install")
    direct = base.sh("x")
    through_fork = base.fork().sh("y")
    ir = hm.pipeline([direct, through_fork])
    assert keys(ir) == ["install", hashed_key("install", "x", 1), hashed_key("", "y", 2)]


def test_equal_steps_on_two_branches_get_two_keys():
    base = hm.sh("install", label="install")
    ir = hm.pipeline([base.fork().sh("test"), base.fork().sh("test")])
    assert len(set(keys(ir))) == 3
