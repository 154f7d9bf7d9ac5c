"""Cache policies and their IR form."""

from datetime import timedelta

import pytest

import harmont as hm
from helpers import render


def cache_of(policy):
    """The IR ``cache`` of a root step rendered with ``policy``."""

    def cached():
        return hm.sh("make", key="make", cache=policy)

    (node,) = render(cached)["nodes"]
    return node["step"].get("cache")


def test_default_is_no_cache():
    assert cache_of(None) is None


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        (hm.forever(), {"policy": "forever"}),
        (hm.forever(env_keys=["RUSTFLAGS", "CC"]), {"policy": "forever", "env_keys": ["RUSTFLAGS", "CC"]}),
        (hm.forever("CC"), {"policy": "forever", "env_keys": ["CC"]}),
        (hm.ttl(timedelta(hours=1)), {"policy": "ttl", "duration_seconds": 3600}),
        (hm.ttl(90), {"policy": "ttl", "duration_seconds": 90}),
        (hm.ttl("1d", env_keys=["TZ"]), {"policy": "ttl", "env_keys": ["TZ"], "duration_seconds": 86400}),
        (hm.on_change("Cargo.lock"), {"policy": "on_change", "paths": ["Cargo.lock"]}),
        (
            hm.on_change("Cargo.toml", "src/**/*.rs", ["a", "b"]),
            {"policy": "on_change", "paths": ["Cargo.toml", "src/**/*.rs", "a", "b"]},
        ),
        (
            hm.compose(hm.on_change("go.sum"), hm.ttl(timedelta(days=7)), hm.forever(["GOFLAGS"])),
            {
                "policy": "compose",
                "sub_policies": [
                    {"policy": "on_change", "paths": ["go.sum"]},
                    {"policy": "ttl", "duration_seconds": 604800},
                    {"policy": "forever", "env_keys": ["GOFLAGS"]},
                ],
            },
        ),
    ],
    ids=["forever", "forever-env", "forever-one-env", "ttl-timedelta", "ttl-seconds", "ttl-text", "on-change",
         "on-change-globs", "compose"],
)
def test_policy_ir(policy, expected):
    assert isinstance(policy, hm.CachePolicy)
    assert cache_of(policy) == expected
