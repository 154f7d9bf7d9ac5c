"""Triggers: ``hm.push``, ``hm.pull_request`` (``hm.pr``)."""

import dataclasses

import pytest

import harmont as hm
from harmont.triggers import PullRequestTrigger, PushTrigger, Trigger


def test_push():
    assert hm.push(branch="main").to_dict() == {"event": "push", "branches": ["main"]}
    assert hm.push(branch=["main", "release/*"]).to_dict() == {"event": "push", "branches": ["main", "release/*"]}
    assert hm.push(tag="v*").to_dict() == {"event": "push", "tags": ["v*"]}
    assert hm.push(tag=("v1", "v2")) == PushTrigger(branches=None, tags=("v1", "v2"))


@pytest.mark.parametrize("kw", [{}, {"branch": "main", "tag": "v*"}])
def test_push_takes_exactly_one_of_branch_and_tag(kw):
    with pytest.raises(ValueError, match=r"hm\.push: pass exactly one of branch or tag\n  → e\.g\."):
        hm.push(**kw)


def test_pull_request():
    assert hm.pull_request().to_dict() == {"event": "pull_request", "types": ["opened", "synchronize", "reopened"]}
    assert hm.pr(branches="main", types=["closed", "ready_for_review"]).to_dict() == {
        "event": "pull_request",
        "branches": ["main"],
        "types": ["closed", "ready_for_review"],
    }
    assert hm.pr is hm.pull_request
    assert isinstance(hm.pr(), PullRequestTrigger) and isinstance(hm.pr(), Trigger)


def test_pull_request_types_are_checked():
    with pytest.raises(ValueError, match="hm.pull_request: types must be non-empty"):
        hm.pull_request(types=[])
    with pytest.raises(ValueError, match="unknown pull_request type 'merged'\n  → valid: closed, opened, ready_for_review, reopened, synchronize"):
        hm.pull_request(types=["opened", "merged"])


def test_triggers_are_frozen_values():
    with pytest.raises(dataclasses.FrozenInstanceError):
        hm.push(branch="main").branches = ()  # type: ignore[misc]
    assert hm.push(branch="main") == hm.push(branch=["main"])
    with pytest.raises(NotImplementedError):
        Trigger().to_dict()
