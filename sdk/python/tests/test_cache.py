"""Cache policies: the helpers, the classes and their IR."""

import dataclasses
from datetime import timedelta

import pytest

import harmont as hm
from harmont._pipeline import _cache_to_dict
from harmont.cache import CacheCompose, CacheForever, CacheNone, CacheOnChange, CachePolicy, CacheTTL


def test_helpers_make_the_classes():
    assert hm.forever() == CacheForever(env_keys=())
    assert hm.forever(env_keys=("ARCH",)).env_keys == ("ARCH",)
    assert hm.ttl(timedelta(days=1)) == CacheTTL(duration=timedelta(days=1))
    assert hm.on_change("a", "b/**") == CacheOnChange(paths=("a", "b/**"))
    policy = hm.compose(hm.forever(), hm.on_change("x"))
    assert policy == CacheCompose(policies=(CacheForever(), CacheOnChange(paths=("x",))))
    assert all(isinstance(p, CachePolicy) for p in (CacheNone(), policy, hm.forever()))
    assert hm.CacheTTL is CacheTTL and hm.CachePolicy is CachePolicy


def test_policies_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        CacheNone().foo = "bar"  # type: ignore[attr-defined]
    with pytest.raises(dataclasses.FrozenInstanceError):
        hm.forever().env_keys = ()  # type: ignore[misc]


def test_on_change_has_no_env_keys():
    with pytest.raises(TypeError):
        CacheOnChange(paths=("a",), env_keys=("X",))  # type: ignore[call-arg]


def test_repr_is_a_dataclasses():
    assert repr(hm.forever()) == "CacheForever(env_keys=())"
    assert repr(CacheNone()) == "CacheNone()"


def test_ir():
    assert _cache_to_dict(CacheNone()) == {"policy": "none"}
    assert _cache_to_dict(hm.forever(env_keys=("A",))) == {"policy": "forever", "env_keys": ["A"]}
    assert _cache_to_dict(hm.ttl(timedelta(hours=6))) == {"policy": "ttl", "duration_seconds": 21600, "env_keys": []}
    assert _cache_to_dict(hm.on_change("a")) == {"policy": "on_change", "paths": ["a"]}
    assert _cache_to_dict(hm.compose(CacheNone(), hm.on_change("a"))) == {
        "policy": "compose",
        "sub_policies": [{"policy": "none"}, {"policy": "on_change", "paths": ["a"]}],
    }


def test_an_unknown_policy_is_a_type_error():
    with pytest.raises(TypeError, match="unknown CachePolicy: str"):
        hm.pipeline([hm.sh("x", cache="forever")])  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="unknown CachePolicy: CachePolicy"):
        _cache_to_dict(CachePolicy())


@pytest.mark.parametrize(("given", "seconds"), [("1d", 86400), ("6h", 21600), ("1h30m", 5400), (90, 90), (" 2d ", 172800)])
def test_ttl_also_takes_seconds_and_strings(given, seconds):
    policy = hm.ttl(given)
    assert policy.duration == timedelta(seconds=seconds)
    assert _cache_to_dict(policy)["duration_seconds"] == seconds


@pytest.mark.parametrize(("given", "error"), [("1w", ValueError), ("", ValueError), (0, ValueError), (-1, ValueError), (True, TypeError), (1.5, TypeError)])
def test_ttl_refuses_bad_durations(given, error):
    with pytest.raises(error, match="hm.ttl: "):
        hm.ttl(given)


def test_on_change_paths_are_strings():
    with pytest.raises(TypeError, match="hm.on_change: paths are strings, got list"):
        hm.on_change(["a", "b"])  # type: ignore[arg-type]
