"""ModelLifecycle: releases, challengers, reference set, probation rollback, controls, pickling."""

from __future__ import annotations

import pickle
import random

import pytest

import learners.policies as policies
from driftline.config import DriftConfig, GuardConfig, LearnerSpec
from driftline.errors import ConfigError, LearnerError
from learners.drift import DriftSignal
from learners.guard import Decision
from learners.lifecycle import ModelLifecycle, Release


def _example(rng: random.Random, flipped: bool = False, rotated: bool = False) -> tuple[dict, int]:
    x = {"a": rng.uniform(-1, 1), "b": rng.uniform(-1, 1)}
    y = int(x["a"] + (-2.0 if rotated else 0.5) * x["b"] > 0)
    return x, (1 - y if flipped else y)


def _lifecycle(**kw) -> ModelLifecycle:
    args = dict(release_every=100, reference=None)
    args.update(kw)
    return ModelLifecycle(
        "m", "classification", LearnerSpec("logistic_regression"), None, DriftConfig(), GuardConfig(), **args
    )


def _ref_accuracy(model, reference) -> float:
    return sum(model.predict_one(x) == y for x, y in reference) / len(reference)


def _feed(
    lc: ModelLifecycle, rng: random.Random, n: int, flipped: bool = False, rotated: bool = False
) -> list:
    events = []
    for _ in range(n):
        events += lc.learn_one(*_example(rng, flipped, rotated))
    return events


def test_versions_increase_and_every_release_carries_n_learned() -> None:
    lc = _lifecycle()
    first = lc.initial_release()
    assert (first.version, first.parent, first.reason) == (1, None, "initial")
    events = _feed(lc, random.Random(0), 1000)
    releases = [first] + [e for e in events if isinstance(e, Release)]
    versions = [r.version for r in releases]
    assert versions == sorted(set(versions)) and len(versions) >= 3
    assert all("n_learned" in r.metrics for r in releases)
    assert releases[-1].metrics["n_learned"] <= lc.n_learned == 1000
    assert releases[-1].data_range["last_index"] <= 999
    assert lc.served_version == releases[-1].version
    assert lc.snapshot_metrics()["n_learned"] == 1000


def test_drift_starts_a_challenger_that_gets_promoted() -> None:
    rng = random.Random(1)
    lc = _lifecycle(release_every=10**6)  # no incremental releases: only the challenger can adapt
    lc.initial_release()
    _feed(lc, rng, 1500)
    events = _feed(lc, rng, 3000, rotated=True)  # the concept rotates
    signals = [e for e in events if isinstance(e, DriftSignal)]
    promoted = [e for e in events if isinstance(e, Release) and e.reason == "challenger"]
    assert signals and signals[0].signal in ("error", "loss")
    assert promoted and promoted[0].decision is not None and promoted[0].decision.outcome == "promote"
    assert promoted[0].parent is not None and promoted[0].version > promoted[0].parent
    assert lc.n_learned == 4500  # the challenger inherits the lineage count: every label counted once


def test_a_reversal_is_served_without_an_operator_once_the_gain_is_beyond_the_hold_margin() -> None:
    rng = random.Random(1)
    lc = _lifecycle()
    lc.initial_release()
    _feed(lc, rng, 1500)
    events = _feed(lc, rng, 600, flipped=True)  # every label turns around: disagreement is near total
    promoted = [
        e.decision
        for e in events
        if isinstance(e, Release) and e.reason in ("incremental", "challenger") and e.decision is not None
    ]
    overruled = [d for d in promoted if d.evidence["disagreement"] > 0.5]
    assert overruled, [d.text for d in promoted]
    assert "better by more than" in overruled[0].text and overruled[0].checks["disagreement"] is True
    # The served model follows the new concept within the 600 labels.
    assert (
        _ref_accuracy(lc.served_model, [_example(random.Random(i), flipped=True) for i in range(200)]) > 0.9
    )


def test_a_high_disagreement_candidate_short_of_the_hold_margin_is_held_until_an_operator_promotes_it() -> (
    None
):
    rng = random.Random(1)
    lc = ModelLifecycle(
        "m",
        "classification",
        LearnerSpec("logistic_regression"),
        None,
        DriftConfig(),
        GuardConfig(hold_margin=0.99),  # no gain can show this margin: only an operator can promote
        release_every=100,
    )
    lc.initial_release()
    _feed(lc, rng, 1500)
    events = _feed(lc, rng, 600, flipped=True)
    holds = [e for e in events if isinstance(e, Decision) and e.outcome == "hold"]
    assert holds and holds[0].checks["disagreement"] is not True
    # Small incremental steps may still ship; no release changes more than max_disagreement of the answers.
    released = [e.decision for e in events if isinstance(e, Release) and e.decision is not None]
    assert all(d.evidence["disagreement"] <= 0.5 for d in released)
    assert lc.snapshot_metrics()["held"] == 1.0
    (release,) = lc.apply_control("promote", {})
    assert release.reason == "manual" and release.decision is not None
    assert lc.snapshot_metrics()["held"] == 0.0


def test_poisoned_labels_are_stopped_by_the_reference_set() -> None:
    reference = [_example(random.Random(100 + i)) for i in range(300)]
    results = {}
    for label, ref in (("reference", reference), ("none", None)):
        rng = random.Random(2)
        lc = _lifecycle(reference=ref)
        lc.initial_release()
        _feed(lc, rng, 1000)
        events = _feed(lc, rng, 800, flipped=True)  # a burst of flipped labels
        results[label] = (_ref_accuracy(lc.served_model, reference), events)
    acc, events = results["reference"]
    assert acc > 0.9
    rejected = [e for e in events if isinstance(e, Decision) and e.outcome == "reject"]
    assert any(e.checks.get("reference") not in (True, None) for e in rejected)
    assert results["none"][0] < 0.5  # without the reference set the poisoned model is served


def test_regression_after_promotion_rolls_back() -> None:
    rng = random.Random(3)
    lc = ModelLifecycle(
        "m",
        "classification",
        LearnerSpec("logistic_regression"),
        None,
        # No detector acts (the operator's promotion is the only release after the first ones): since session 22
        # the sentinel's early copy (frozen at 500 labels) alarms 9 labels into the flipped burst and its
        # challenger would be promoted first.
        DriftConfig(adwin_delta=1e-12, ph_loss=False, sentinel=False),
        GuardConfig(),
        release_every=10**6,
    )
    lc.initial_release()
    _feed(lc, rng, 1000)
    good = lc.apply_control("promote", {})[0]
    lc.apply_control("pause_learning", {})
    lc.apply_control("resume_learning", {})
    _feed(lc, rng, 400, flipped=True)  # the champion learns garbage...
    bad = lc.apply_control("promote", {"candidate": "champion"})[0]  # ...and an operator promotes it
    assert bad.parent == good.version
    events = _feed(lc, rng, 300)
    rollbacks = [e for e in events if isinstance(e, Release) and e.reason == "rollback"]
    assert rollbacks, [getattr(e, "text", e) for e in events]
    rb = rollbacks[0]
    assert rb.version > bad.version and rb.parent == good.version
    assert rb.decision is not None and rb.decision.outcome == "rollback"
    assert _ref_accuracy(lc.served_model, [_example(random.Random(i)) for i in range(200)]) > 0.9


def test_pause_stops_learning_and_controls_validate() -> None:
    lc = _lifecycle()
    lc.initial_release()
    lc.apply_control("pause_learning", {})
    assert lc.paused
    _feed(lc, random.Random(4), 200)
    assert lc.n_learned == 0
    lc.apply_control("resume_learning", {})
    _feed(lc, random.Random(4), 10)
    assert lc.n_learned == 10
    lc.apply_control("set", {"guard.alpha": "0.01", "release_every": "7", "drift.feature_drift": "false"})
    assert lc.guard.alpha == 0.01 and lc.release_every == 7 and lc.drift.feature_drift is False
    with pytest.raises(ConfigError, match=r"guard\.nope"):
        lc.apply_control("set", {"guard.nope": "1"})
    with pytest.raises(LearnerError, match="unknown control command"):
        lc.apply_control("explode", {})


def test_lifecycle_pickles_mid_stream_and_continues_identically() -> None:
    lc = ModelLifecycle(
        "m",
        "classification",
        LearnerSpec("hoeffding_tree"),
        LearnerSpec("gaussian_nb"),
        DriftConfig(),
        GuardConfig(),
        release_every=200,
        segment_feature="seg",
    )
    lc.initial_release()
    rng = random.Random(5)
    for i in range(1500):
        x, y = _example(rng, flipped=i > 800)
        x["seg"] = "ab"[i % 2]
        lc.learn_one(x, y)
    blob = pickle.dumps(lc)
    assert len(blob) < 500_000
    twin = pickle.loads(blob)
    rng_a, rng_b = random.Random(6), random.Random(6)
    for i in range(300):
        (xa, ya), (xb, yb) = _example(rng_a), _example(rng_b)
        xa["seg"] = xb["seg"] = "ab"[i % 2]
        ea, eb = lc.learn_one(xa, ya), twin.learn_one(xb, yb)
        assert [type(e).__name__ for e in ea] == [type(e).__name__ for e in eb]
    assert twin.served_version == lc.served_version and twin.n_learned == lc.n_learned
    # per-segment metrics of the served version (since its release: one segment may not have been seen yet)
    assert any(k.startswith(("segment.a.", "segment.b.")) for k in lc.snapshot_metrics())


def test_regression_lifecycle_detects_drift_and_reports_finite_metrics() -> None:
    rng = random.Random(7)
    lc = ModelLifecycle(
        "r",
        "regression",
        LearnerSpec("linear_regression"),
        None,
        DriftConfig(),
        GuardConfig(),
        release_every=100,
    )
    lc.initial_release()
    events = []
    for i in range(6000):
        x = {"a": rng.uniform(0, 10), "b": rng.gauss(0, 1)}
        y = (3 * x["a"] if i < 3000 else -3 * x["a"] + 30) + rng.gauss(0, 0.5)
        events += lc.learn_one(x, y)
    alarms = [e.index for e in events if isinstance(e, DriftSignal) and e.signal in ("error", "loss")]
    assert alarms and 3000 <= alarms[0] < 3300
    metrics = lc.snapshot_metrics()
    assert {"mae", "rmse", "rolling_mae", "rolling_rmse", "n_learned"} <= set(metrics)
    assert all(v == v and abs(v) != float("inf") for v in metrics.values())
    assert metrics["rolling_mae"] < 3.0  # adapted to the new concept


def test_a_new_alarm_replaces_a_challenger_that_has_not_won_for_challenger_fresh_labels() -> None:
    """led-abrupt: a false alarm's challenger (still on the old concept) must not hold the only slot through the
    real drift: an alarm more than CHALLENGER_FRESH labels after it starts a fresh challenger; a nearer one does not."""
    from learners.lifecycle import CHALLENGER_FRESH

    lc = _lifecycle()
    lc.initial_release()
    rng = random.Random(3)
    _feed(lc, rng, 200)
    lc._start_challenger(200)
    first = lc._challenger.model
    alarm = [DriftSignal("page_hinkley", "error", 0, {"test": "frozen_snapshot"})]
    x, y = _example(rng)
    # Not yet stale: the same challenger keeps learning.
    lc._monitor(x, y, y, {y: 1.0}, 200 + CHALLENGER_FRESH, alarm)
    assert lc._challenger.model is first and lc._challenger.started == 200
    lc._monitor(x, y, y, {y: 1.0}, 201 + CHALLENGER_FRESH, alarm)
    assert lc._challenger.model is not first and lc._challenger.started == 201 + CHALLENGER_FRESH


def test_a_poisoned_cold_start_is_still_refused_by_the_reference_set(monkeypatch: pytest.MonkeyPatch) -> None:
    """Flipped labels from label 17 on: the cold-start releases (no statistical test) still face the reference
    set, so the served model stays the clean few-label one. Without the cold start the first release (50 labels,
    judged against the untrained model's reference loss) serves the poisoned model."""
    monkeypatch.setattr(policies, "COLD_START", 50)
    monkeypatch.setattr(policies, "COLD_GROWTH", 2.0)
    reference = [_example(random.Random(100 + i)) for i in range(300)]
    rng = random.Random(2)
    lc = _lifecycle(reference=reference, release_every=50)
    lc.initial_release()
    events = _feed(lc, rng, 16)
    events += _feed(lc, rng, 300, flipped=True)
    releases = [e.metrics["n_learned"] for e in events if isinstance(e, Release)]
    assert releases[:2] == [1, 2] and max(releases) <= 16
    refused = [e for e in events if isinstance(e, Decision) and e.outcome == "reject"]
    assert refused and all(e.checks.get("reference") not in (True, None) for e in refused)
    assert _ref_accuracy(lc.served_model, reference) > 0.8


def test_promote_of_a_missing_candidate_says_what_there_is_and_what_to_do() -> None:
    """Session 35: `promote held` with nothing held answered "no 'held' candidate (use held, challenger or
    champion)", the three words again whatever existed."""
    lc = _lifecycle()
    with pytest.raises(LearnerError) as nothing:
        lc.apply_control("promote", {"candidate": "held"})
    assert "nothing is held for approval" in str(nothing.value)
    assert "the champion (nothing released yet): `promote champion`" in str(nothing.value)
    assert "use held, challenger or champion" not in str(nothing.value)
    lc.initial_release()
    _feed(lc, random.Random(0), 300)
    with pytest.raises(LearnerError) as released:
        lc.apply_control("promote", {"candidate": "challenger"})
    text = str(released.value)
    assert text.startswith("promote: no 'challenger' candidate: no challenger is learning"), text
    assert f"the champion (serving v{lc.served_version}): `promote champion` releases it again" in text
    assert "`driftline models list`, then `driftline models promote VERSION`" in text
    _feed(lc, random.Random(0), 700)
    _feed(lc, random.Random(1), 20, flipped=True)  # a drift alarm starts a challenger
    assert lc._challenger.lineage is not None
    with pytest.raises(LearnerError) as challenged:
        lc.apply_control("promote", {"candidate": "held"})
    assert "; there is a challenger (" in str(challenged.value) and "`promote challenger`" in str(
        challenged.value
    )
