"""The lead as served (``learners.policies.SERVED_LEAD``, session 34, a screen off by default): after a drift alarm,
carried releases come at a shorter floor only while frozen champion copies are shown better than the snapshot
served when they were frozen, on the labels of events that arrived after a release of them could have been
served (the label delay measured by the lifecycle from the first label each version answers)."""

from __future__ import annotations

import itertools
import math
import random

import pytest

from driftline.config import DriftConfig, GuardConfig, LearnerSpec
from learners.lifecycle import ModelLifecycle, Release
from learners.replay import Row, replay

DELAY = 50


def _rows(n: int = 3000, flip: int = 1000, seed: int = 5) -> list[Row]:
    """A linear concept that reverses at ``flip`` (the alarm opens the post-alarm floor) and then keeps turning, so
    a champion copy a few dozen labels fresher than the served snapshot is better on the events it could serve."""
    rng = random.Random(seed)
    rows: list[Row] = []
    for i in range(n):
        x = {"a": rng.uniform(-1, 1), "b": rng.uniform(-1, 1)}
        angle = 0.0 if i < flip else math.pi + 6 * math.pi * (i - flip) / (n - flip)
        y = int(math.cos(angle) * x["a"] + math.sin(angle) * x["b"] > 0)
        rows.append((str(i), None, x, y))
    return rows


def _run(monkeypatch: pytest.MonkeyPatch, lead: int, margin: float = 0.0) -> tuple[ModelLifecycle, list[int]]:
    monkeypatch.setattr("learners.policies.SERVED_LEAD", lead)
    monkeypatch.setattr("learners.policies.SERVED_MARGIN", margin)
    lc = ModelLifecycle(
        "m",
        "classification",
        LearnerSpec("logistic_regression"),
        None,
        DriftConfig(feature_drift=False),
        GuardConfig(),
        release_every=25,
    )
    lc.initial_release()
    releases: list[int] = []
    original = lc._release

    def spy(*args: object, **kwargs: object) -> object:
        out = original(*args, **kwargs)  # type: ignore[arg-type]
        if isinstance(out, Release) and out.reason == "incremental" and out.index is not None:
            releases.append(out.index)
        return out

    monkeypatch.setattr(lc, "_release", spy)
    replay(_rows(), lc, delay=DELAY)
    return lc, releases


def _after_alarm_gaps(lc: ModelLifecycle, releases: list[int]) -> list[int]:
    after = [i for i in releases if i > 1000]
    return [b - a for a, b in itertools.pairwise(after)]


def test_the_lifecycle_measures_the_label_delay_from_each_versions_first_answered_label(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    lc, _ = _run(monkeypatch, 10)
    # The replay predicts event i before it reveals the label of event i - 50: a release while learning that label
    # is first served to event i + 1, 51 events after the label's own.
    assert lc._label_delay == DELAY + 1


def test_a_shown_lead_as_served_shortens_the_floor_after_the_alarm(monkeypatch: pytest.MonkeyPatch) -> None:
    base_lc, base = _run(monkeypatch, 0)
    lead_lc, lead = _run(monkeypatch, 10)
    # Off: after the alarm carried releases are at least the floor (50) apart.
    assert base_lc._label_delay is None and lead_lc._increment.lead is not None
    assert min(_after_alarm_gaps(base_lc, base)) >= 50
    # On: the re-learning champion's frozen copies beat the stale snapshot on the events they could have served,
    # so releases come at the short floor (never closer), and more of them.
    gaps = _after_alarm_gaps(lead_lc, lead)
    assert min(gaps) >= 10
    assert sum(g < 50 for g in gaps) > 0
    assert len(lead) > len(base)


def test_a_lead_below_the_margin_keeps_the_floor(monkeypatch: pytest.MonkeyPatch) -> None:
    # A margin no lead can reach (the whole loss scale): the test never rejects, the floor stays.
    lc, releases = _run(monkeypatch, 10, margin=1.0)
    assert lc._increment.lead is not None and lc._increment.lead.n > 0
    assert min(_after_alarm_gaps(lc, releases)) >= 50
