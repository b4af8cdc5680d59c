"""A champion crippled by one event (session 43, found from outside): a feature value of 1e12 inflates logistic
regression's scaler for good. The guard rightly kept the crippled champion from users, but nothing else happened:
no release for the rest of a stable stream (the served version stayed the last one before the event, 1,900 labels).

Now the champion shown worse than the served snapshot by ``learners.policies.BROKEN_MARGIN`` is replaced by a copy
of it, which goes on learning; and an incremental release made while probation runs keeps probation's model
(``learners.lifecycle.PROBATION_ANCHOR``), so a release that went out a few labels after the second such event is
rolled back (before, releases every 25 labels restarted probation, whose first look is after 50 pairs)."""

from __future__ import annotations

import random
from typing import Any

import pytest

import learners.lifecycle
import learners.policies
from bench.accuracy import default_lifecycle
from learners.replay import replay


def _rows(poisoned: bool) -> list[tuple[str, None, dict[str, float], int]]:
    rng = random.Random(5)
    rows = []
    for i in range(2500):
        a, b, c = rng.random(), rng.random(), rng.random()
        y = int(a + b > 1)
        rows.append((f"e{i}", None, {"a": 1e12 if poisoned and i in (600, 900) else a, "b": b, "c": c}, y))
    return rows


def _run(poisoned: bool) -> tuple[Any, list[dict[str, Any]], Any]:
    rows = _rows(poisoned)
    lifecycle = default_lifecycle("classification", 0)
    preds: list[dict[str, Any]] = []
    result = replay(rows, lifecycle, delay=20, on_prediction=preds.append)

    def accuracy(lo: int, hi: int) -> float:
        return sum(p["prediction"] == rows[p["index"]][3] for p in preds[lo:hi]) / (hi - lo)

    return lifecycle, preds, (result.summary(), accuracy)


def test_a_champion_crippled_by_one_feature_value_is_replaced_and_learning_goes_on() -> None:
    lifecycle, preds, (_, accuracy) = _run(poisoned=True)
    assert lifecycle.champion_resets >= 1
    # releases go on after the event (before: v37 from label 600 to the end)
    assert preds[-1]["version"] >= preds[700]["version"] + 30, [
        preds[i]["version"] for i in (700, 1500, 2499)
    ]
    assert accuracy(600, 2500) >= 0.96
    clean, _, (_, clean_accuracy) = _run(poisoned=False)
    assert clean.champion_resets == 0  # never on a clean stream
    assert clean_accuracy(600, 2500) - accuracy(600, 2500) < 0.02


def test_a_release_made_just_after_the_event_is_rolled_back(monkeypatch: pytest.MonkeyPatch) -> None:
    # Since session 45 the champion of the first event is reset sooner (shown worse by the release margin,
    # ``SLIPPED_ALPHA``), and no release is made just after the second one: nothing to roll back.
    _, _, (summary, accuracy) = _run(poisoned=True)
    worst = min(accuracy(lo, lo + 100) for lo in range(600, 2500, 100))
    assert worst >= 0.85, (summary["rollbacks"], worst)
    monkeypatch.setattr(learners.policies, "SLIPPED_ALPHA", 0.0)  # the release this test is about
    # (and at ``YOUNG_MARGIN`` 0.05 the releases come at other labels, none just after the event: session 46)
    monkeypatch.setattr(learners.policies, "YOUNG_MARGIN", 0.0)
    _, _, (summary, accuracy) = _run(poisoned=True)
    worst = min(accuracy(lo, lo + 100) for lo in range(600, 2500, 100))
    assert summary["rollbacks"] and worst >= 0.85, (summary["rollbacks"], worst)
    monkeypatch.setattr(learners.lifecycle, "PROBATION_ANCHOR", False)
    _, _, (summary, accuracy) = _run(poisoned=True)
    worst = min(accuracy(lo, lo + 100) for lo in range(600, 2500, 100))
    assert not summary["rollbacks"] and worst < 0.8  # each release restarted probation: it never looked


def test_the_policy_says_broken_only_on_evidence_and_forgets_it_at_a_release() -> None:
    from driftline.config import GuardConfig

    policy = learners.policies.IncrementalPolicy("classification", GuardConfig())
    for i in range(40):  # champion and snapshot agree
        policy.observe(i % 2, i % 2, i % 2, None)
    assert not policy.broken()
    for i in range(200):  # the champion wrong on a fifth of the labels the snapshot gets right
        y = i % 2
        policy.observe(y, 1 - y if i % 5 == 0 else y, y, None)
    assert policy.broken()
    policy.released(1000)
    assert not policy.broken()
