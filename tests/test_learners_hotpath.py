"""The trainer's hot-path shortcuts give the same answers as the plain code they replace."""

from __future__ import annotations

import collections
import math
import pickle
import random

from hypothesis import given, settings
from hypothesis import strategies as st
from river import metrics, utils

from driftline.config import DriftConfig, GuardConfig, LearnerSpec
from learners.evaluation import Evaluator
from learners.features import CLIP, clean_features
from learners.lifecycle import ModelLifecycle
from learners.replay import replay
from learners.synthetic import synthetic_stream
from streams.train import RecentIds


def _reference_clean(x: dict) -> dict:
    """The policy spelled out value by value (the slow path, without the all-float shortcut)."""
    out = {}
    for name, value in x.items():
        if value is None:
            continue
        if isinstance(value, bool):
            out[name] = 1.0 if value else 0.0
        elif isinstance(value, (int, float)):
            if math.isfinite(float(value)):
                out[name] = min(max(float(value), -CLIP), CLIP)
        elif isinstance(value, str):
            out[f"{name}={value}"] = 1.0
    return out


floats = st.floats(allow_nan=True, allow_infinity=True) | st.sampled_from([1e13, -1e13, 1e308, -1e308, 0.0])
values = floats | st.none() | st.booleans() | st.integers() | st.text(max_size=3)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.text(min_size=1, max_size=4), floats, max_size=8))
def test_clean_features_fast_path_matches_policy_on_floats(x: dict) -> None:
    assert clean_features(x) == _reference_clean(x)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.text(min_size=1, max_size=4), values, max_size=8))
def test_clean_features_matches_policy_on_mixed_values(x: dict) -> None:
    assert clean_features(x) == _reference_clean(x)


def test_evaluator_matches_river_metrics_cumulative_and_rolling() -> None:
    rng = random.Random(5)
    classes = ["a", "b", "c"]
    ev = Evaluator("classification", window=50)
    river_metrics = {
        "accuracy": metrics.Accuracy,
        "precision": metrics.MacroPrecision,
        "recall": metrics.MacroRecall,
        "f1": metrics.MacroF1,
        "log_loss": metrics.CrossEntropy,
    }
    cumulative = {k: cls() for k, cls in river_metrics.items()}
    rolling = {k: utils.Rolling(cls, window_size=50) for k, cls in river_metrics.items()}
    for _ in range(400):
        y = rng.choice(classes)
        raw = {c: rng.random() for c in classes[: rng.randint(1, 3)]}
        total = sum(raw.values())
        proba = {c: p / total for c, p in raw.items()}
        pred = max(proba, key=proba.__getitem__)
        ev.update(y, pred, proba)
        for k in river_metrics:
            arg = {**proba, **({y: 0.0} if y not in proba else {})} if k == "log_loss" else pred
            cumulative[k].update(y, arg)
            rolling[k].update(y, arg)
    snap = ev.snapshot()
    for k in river_metrics:
        assert math.isclose(snap[k], cumulative[k].get(), rel_tol=1e-9, abs_tol=1e-12), k
        assert math.isclose(snap[f"rolling_{k}"], rolling[k].get(), rel_tol=1e-9, abs_tol=1e-9), k


def test_evaluator_regression_matches_river() -> None:
    rng = random.Random(6)
    ev = Evaluator("regression", window=30)
    mae, rmse, rolling_mae = metrics.MAE(), metrics.RMSE(), utils.Rolling(metrics.MAE, window_size=30)
    for _ in range(200):
        y, p = rng.gauss(0, 3), rng.gauss(0, 3)
        ev.update(y, p)
        mae.update(y, p)
        rmse.update(y, p)
        rolling_mae.update(y, p)
    snap = ev.snapshot()
    assert math.isclose(snap["mae"], mae.get()) and math.isclose(snap["rmse"], rmse.get())
    assert math.isclose(snap["rolling_mae"], rolling_mae.get(), rel_tol=1e-9)


def test_missing_prediction_counts_as_wrong() -> None:
    ev = Evaluator("classification")
    ev.update(True, None, {})
    ev.update(True, True, {True: 0.9, False: 0.1})
    snap = ev.snapshot()
    assert snap["accuracy"] == 0.5 and snap["n"] == 2.0
    assert snap["log_loss"] > 10  # "knew nothing" is the capped loss of probability ~0


def _lifecycle() -> ModelLifecycle:
    return ModelLifecycle(
        "m",
        "classification",
        LearnerSpec("logistic_regression"),
        None,
        DriftConfig(feature_drift=False),
        GuardConfig(),
        release_every=200,
    )


def test_reusing_the_scorers_answer_changes_nothing() -> None:
    """A trainer given the served answers (as TrainingExamples carry them) decides exactly as one predicting them."""
    rows = list(synthetic_stream("sea-abrupt", 3000, seed=2)[0])
    answers: list[tuple] = []
    replay(
        rows,
        _lifecycle(),
        delay=20,
        on_prediction=lambda p: answers.append((p["prediction"], p["proba"], p["version"])),
    )
    with_answers, without = _lifecycle(), _lifecycle()
    releases: dict[str, list] = {"with": [], "without": []}
    for lc in (with_answers, without):
        lc.initial_release()
    for i, ((_, _, x, y), (pred, proba, version)) in enumerate(zip(rows, answers, strict=True)):
        a = with_answers.learn_one(
            x, y, served_prediction=pred, served_proba=proba, served_version=version, index=i
        )
        b = without.learn_one(x, y, served_prediction=pred, served_version=version, index=i)
        releases["with"] += [(e.version, e.reason) for e in a if hasattr(e, "version")]
        releases["without"] += [(e.version, e.reason) for e in b if hasattr(e, "version")]
    assert releases["with"] == releases["without"] and releases["with"]
    snap_a, snap_b = with_answers.snapshot_metrics(), without.snapshot_metrics()
    assert snap_a.keys() == snap_b.keys()
    for k in snap_a:
        assert math.isclose(snap_a[k], snap_b[k], rel_tol=1e-9, abs_tol=1e-12), k


def test_recent_ids_bounded_ordered_and_picklable() -> None:
    recent = RecentIds(size=100)
    for i in range(250):
        recent.add(f"e{i}")
    assert len(recent) == 100
    assert "e149" not in recent and "e150" in recent and "e249" in recent
    restored = pickle.loads(pickle.dumps(recent))
    assert len(restored) == 100 and "e150" in restored and "e149" not in restored
    restored.add("e250")  # evicts the oldest (e150), exactly as the original would
    recent.add("e250")
    assert ("e150" in restored, "e151" in restored) == ("e150" in recent, "e151" in recent) == (False, True)
    recent.add("e200")  # already there: nothing moves
    assert "e151" in recent and len(recent) == 100


def test_recent_ids_pickle_stays_small() -> None:
    recent = RecentIds()
    for i in range(10_000):
        recent.add(f"event-{i:012d}")
    plain = collections.OrderedDict((f"event-{i:012d}", None) for i in range(10_000))
    assert len(pickle.dumps(recent)) < len(pickle.dumps(plain)) / 2
