"""The served snapshot's lag behind the champion (issue 13): incremental releases carry their evidence."""

from __future__ import annotations

import itertools
import random

import pytest

from driftline.config import DriftConfig, GuardConfig, LearnerSpec
from learners.lifecycle import ModelLifecycle, Release


def _releases(carry_release_every: int, n: int = 1500) -> list[int]:
    """Stream indices of the incremental releases of an LR on a slowly rotating linear concept."""
    rng = random.Random(3)
    lc = ModelLifecycle(
        "m",
        "classification",
        LearnerSpec("logistic_regression"),
        None,
        DriftConfig(feature_drift=False),
        GuardConfig(carry_release_every=carry_release_every),
        release_every=25,
    )
    lc.initial_release()
    out = []
    for i in range(n):
        w = (
            i / n
        )  # the boundary turns a little with every event: the champion keeps improving on the snapshot
        x = {"a": rng.uniform(-1, 1), "b": rng.uniform(-1, 1)}
        y = int(x["a"] + (0.5 - 2 * w) * x["b"] > 0)
        for e in lc.learn_one(x, y, index=i):
            if isinstance(e, Release) and e.reason == "incremental":
                out.append(i)
    return out


def test_carried_evidence_releases_more_often_but_never_closer_than_the_floor(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The cold start's untested releases (a release every few labels until the snapshot has 151) are not what
    # this compares: the tested releases after it, with and without carried evidence.
    monkeypatch.setattr("learners.policies.COLD_START", 0)
    monkeypatch.setattr(
        "learners.policies.QUIET_LABELS", 0, raising=False
    )  # the floor always (as after a drift alarm)
    restarted, carried = _releases(0), _releases(50)
    assert len(carried) > 1.5 * len(restarted) > 0  # measured: 29 against 16
    gaps = [b - a for a, b in itertools.pairwise(carried)]
    assert min(gaps) >= 50


def test_in_a_quiet_stretch_carried_releases_follow_release_every(monkeypatch: pytest.MonkeyPatch) -> None:
    """With ``QUIET_LABELS`` on: the rotating concept raises no drift alarm, so carried releases come every
    ``release_every`` (25) labels, not every ``carry_release_every`` (50), and never closer (session 18)."""
    monkeypatch.setattr("learners.policies.COLD_START", 0)
    monkeypatch.setattr("learners.policies.QUIET_LABELS", 2000, raising=False)  # off by default (session 18)
    quiet = _releases(50)
    monkeypatch.setattr("learners.policies.QUIET_LABELS", 0, raising=False)
    floor = _releases(50)
    gaps = [b - a for a, b in itertools.pairwise(quiet)]
    assert min(gaps) >= 25
    assert len(quiet) > 1.3 * len(floor)
    assert sorted(gaps)[len(gaps) // 2] < 50
