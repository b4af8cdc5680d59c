"""``ModelLifecycle.learn_batch`` against ``learn_one`` on the same replayed stream: the same releases, drift signals
and guard decisions at the same labels, and the same models (predictions within float tolerance).

The stream has abrupt concept drifts (challengers, promotions, probation), a stretch of flipped labels (rollbacks
or rejections), a reference set, a segment feature, examples carrying the served answer (current, stale and
missing) and records the learner refuses (a third label for a binary-only model), in batches of random sizes.
"""

from __future__ import annotations

import dataclasses
import math
import random
from typing import Any

import pytest

from driftline.config import DriftConfig, GuardConfig, LearnerSpec
from learners.drift import DriftSignal
from learners.guard import Decision
from learners.lifecycle import Labelled, ModelLifecycle, Release
from learners.synthetic import synthetic_stream

N = 2400


def _lifecycle(spec: LearnerSpec, task: str = "classification", reference: Any = None) -> ModelLifecycle:
    lc = ModelLifecycle(
        "m",
        task,
        spec,
        None,
        dataclasses.replace(DriftConfig(), feature_drift=False),
        GuardConfig(),
        segment_feature="seg",
        reference=reference,
        release_every=25,
    )
    lc.initial_release()
    return lc


def _stream(task: str, seed: int) -> list[tuple[dict[str, Any], Any]]:
    rows, _drifts = synthetic_stream("sea-abrupt", N, seed=seed)
    rng = random.Random(seed)
    out = []
    for i, (_id, _ts, x, y) in enumerate(rows):
        x = {f"x{k}": float(v) for k, v in x.items()}
        x["seg"] = "a" if x[next(iter(x))] > 5 else "b"
        if task == "regression":
            y = sum(x[k] for k in x if k != "seg") + (10.0 if i > N // 2 else 0.0) + rng.gauss(0, 0.5)
        elif 1500 <= i < 1700:
            y = not y  # a stretch of flipped labels after the second concept's releases
        out.append((x, y))
    return out


def _examples(
    spec: LearnerSpec, task: str, rows: list[tuple[dict[str, Any], Any]], seed: int
) -> list[Labelled]:
    """The rows with the answers a scorer gave: replayed through a lifecycle, the label arriving late, sometimes
    answered by a version that is no longer served, sometimes without an answer at all."""
    rng = random.Random(seed)
    lc = _lifecycle(spec, task)
    answers: list[tuple[Any, Any, Any]] = []
    out = []
    for i, (x, y) in enumerate(rows):
        pred, proba = lc.served_model.predict_with_proba(x)
        answers.append((pred, {str(k): v for k, v in proba.items()} or None, lc.served_version))
        if i >= 5:
            xs, ys = rows[i - 5]
            lc.learn_one(xs, ys, index=i - 5)
        roll = rng.random()
        answer = answers[i] if roll < 0.7 else (answers[max(i - 40, 0)] if roll < 0.8 else (None, None, None))
        if task == "classification" and spec.params.get("multiclass") == "binary" and rng.random() < 0.005:
            y = "third"  # the binary-only learner refuses it: learn_one raises, learn_batch returns the error
        pred, proba, version = answer
        out.append(
            Labelled(
                x, y, served_prediction=pred, served_version=version, served_proba=proba, index=i, ts=i * 10
            )
        )
    return out


def _sig(event: Any) -> tuple[Any, ...]:
    if isinstance(event, Release):
        metrics = {k: v for k, v in event.metrics.items() if "latency" not in k}
        return (
            "release",
            event.version,
            event.parent,
            event.reason,
            tuple(sorted(event.data_range.items())),
            event.index,
            _approx(metrics),
            _sig(event.decision) if event.decision else None,
        )
    if isinstance(event, Decision):
        evidence = {k: v for k, v in event.evidence.items() if "latency" not in k}
        checks = {k: v for k, v in event.checks.items() if k != "latency"}
        return (
            "decision",
            event.outcome,
            event.reason,
            event.candidate,
            event.index,
            _approx(evidence),
            tuple(sorted(checks.items())),
        )
    assert isinstance(event, DriftSignal)
    return ("drift", event.detector, event.signal, event.index)


def _approx(values: dict[str, float]) -> tuple[tuple[str, Any], ...]:
    return tuple((k, pytest.approx(v, rel=1e-9, abs=1e-12)) for k, v in sorted(values.items()))


def _outcome(result: Any) -> Any:
    if isinstance(result, Exception):
        return ("error", type(result).__name__, str(result))
    return [_sig(e) for e in result]


def _run_one(lc: ModelLifecycle, examples: list[Labelled]) -> list[Any]:
    out: list[Any] = []
    for e in examples:
        try:
            out.append(
                lc.learn_one(
                    e.x,
                    e.y,
                    served_prediction=e.served_prediction,
                    served_version=e.served_version,
                    served_proba=e.served_proba,
                    index=e.index,
                    ts=e.ts,
                )
            )
        except Exception as exc:  # as the trainer does: dead-letter it and go on
            out.append(exc)
    return out


def _run_batch(lc: ModelLifecycle, examples: list[Labelled], seed: int) -> list[Any]:
    rng = random.Random(seed)
    out: list[Any] = []
    k = 0
    while k < len(examples):
        size = rng.choice([1, 7, 64, 500, 733])
        batch = examples[k : k + size]
        result = lc.learn_batch(batch)
        assert len(result) == len(batch)
        out.extend(result)
        k += size
    return out


CASES = [
    ("classification", LearnerSpec("logistic_regression")),
    ("classification", LearnerSpec("logistic_regression", {"multiclass": "binary"})),
    ("classification", LearnerSpec("hoeffding_tree")),
    ("classification", LearnerSpec("auto")),
    ("classification", LearnerSpec("gaussian_nb")),
    ("regression", LearnerSpec("linear_regression")),
    ("regression", LearnerSpec("auto")),  # its members scored on the served snapshot's copies (batched)
]


@pytest.mark.parametrize(("task", "spec"), CASES, ids=lambda c: getattr(c, "name", c))
def test_learn_batch_makes_the_same_decisions_as_learn_one(task: str, spec: LearnerSpec) -> None:
    rows = _stream(task, seed=3)
    examples = _examples(spec, task, rows, seed=4)
    reference = [rows[i] for i in range(0, 600, 6)]
    one, batched = _lifecycle(spec, task, reference), _lifecycle(spec, task, reference)
    expected = [_outcome(r) for r in _run_one(one, examples)]
    got = [_outcome(r) for r in _run_batch(batched, examples, seed=5)]
    for i, (a, b) in enumerate(zip(expected, got, strict=True)):
        assert b == a, f"example {i}: learn_batch {b} != learn_one {a}"
    events = [e for r in expected if isinstance(r, list) for e in r]
    kinds = {e[0] for e in events}
    assert "release" in kinds and one.served_version > 2, "the stream must exercise releases"
    assert "decision" in kinds or "drift" in kinds
    assert (one.served_version, one.n_learned) == (batched.served_version, batched.n_learned)
    probe = [x for x, _ in rows[-200:]]
    for model_a, model_b in ((one.served_model, batched.served_model), (one.champion, batched.champion)):
        for x in probe:
            pa, pb = model_a.predict_with_proba(x), model_b.predict_with_proba(x)
            if task == "regression":
                assert math.isclose(pa[0], pb[0], rel_tol=1e-9, abs_tol=1e-9)
            else:
                assert pa[0] == pb[0]
                assert pb[1] == pytest.approx(pa[1], rel=1e-9, abs=1e-12)
    snap_a = {k: v for k, v in one.snapshot_metrics().items() if "latency" not in k}
    snap_b = {k: v for k, v in batched.snapshot_metrics().items() if "latency" not in k}
    assert snap_b == pytest.approx(snap_a, rel=1e-9, abs=1e-12)


def test_the_stream_exercises_challengers_rollbacks_and_refusals() -> None:
    """The comparison above is only as good as its stream: it must reach every kind of decision it claims to."""
    spec = LearnerSpec("logistic_regression", {"multiclass": "binary"})
    rows = _stream("classification", seed=3)
    examples = _examples(spec, "classification", rows, seed=4)
    lc = _lifecycle(spec, "classification", [rows[i] for i in range(0, 600, 6)])
    results = _run_one(lc, examples)
    assert any(isinstance(r, Exception) for r in results)
    events = [e for r in results if isinstance(r, list) for e in r]
    assert any(isinstance(e, DriftSignal) for e in events)
    reasons = {e.reason for e in events if isinstance(e, Release)}
    assert "incremental" in reasons
    assert reasons & {"challenger", "rollback"} or any(
        isinstance(e, Decision) and e.outcome in ("reject", "hold") for e in events
    ), reasons


def _plane(rng: random.Random, flipped: bool = False, rotated: bool = False) -> tuple[dict[str, float], int]:
    x = {"a": rng.uniform(-1, 1), "b": rng.uniform(-1, 1)}
    y = int(x["a"] + (-2.0 if rotated else 0.5) * x["b"] > 0)
    return x, (1 - y if flipped else y)


@pytest.mark.parametrize("kind", ["logistic_regression", "hoeffding_tree"])
def test_learn_batch_matches_learn_one_through_a_promoted_challenger_and_a_rollback(kind: str) -> None:
    """A rotated concept (a challenger is promoted), then an operator promotes a champion that learned flipped
    labels (probation rolls it back): both lifecycles get the same controls at the same points."""
    rng = random.Random(3)
    phases: list[tuple[str, Any]] = [
        ("feed", [Labelled(*_plane(rng), index=i) for i in range(1000)]),
        ("feed", [Labelled(*_plane(rng, rotated=True), index=1000 + i) for i in range(2500)]),
        ("control", ("promote", {})),
        ("control", ("pause_learning", {})),
        ("control", ("resume_learning", {})),
        ("feed", [Labelled(*_plane(rng, rotated=True, flipped=True), index=3500 + i) for i in range(400)]),
        ("control", ("promote", {"candidate": "champion"})),
        ("feed", [Labelled(*_plane(rng, rotated=True), index=3900 + i) for i in range(600)]),
    ]

    def run(batched: bool) -> list[Any]:
        lc = ModelLifecycle(
            "m",
            "classification",
            LearnerSpec(kind),
            None,
            # No sentinel: its copies would alarm on the flipped labels too, and when the challenger that alarm
            # starts is promoted before the operator's promotion, nothing is left to roll back to (session 10's
            # schedule restart at a promotion moved that alarm earlier). The next test covers the sentinel.
            DriftConfig(adwin_delta=1e-12, ph_loss=False, feature_drift=False, sentinel=False),
            GuardConfig(),
            release_every=10**6,
        )
        lc.initial_release()
        out: list[Any] = []
        for what, payload in phases:
            if what == "control":
                out.append([_sig(e) for e in lc.apply_control(*payload)])
            elif batched:
                for k in range(0, len(payload), 300):
                    out.extend(_outcome(r) for r in lc.learn_batch(payload[k : k + 300]))
            else:
                out.extend(_outcome(r) for r in _run_one(lc, payload))
        return out

    expected, got = run(False), run(True)
    assert got == expected
    reasons = [e[3] for r in expected if isinstance(r, list) for e in r if e[0] == "release"]
    assert "challenger" in reasons and "rollback" in reasons, reasons


# A sentinel that freezes and judges copies quickly, so this short stream gets several copies and alarms.
FAST_SENTINEL = dataclasses.replace(
    DriftConfig(),
    feature_drift=False,
    sentinel_warmup=100,
    sentinel_first=150,
    sentinel_every=500,
    sentinel_overlap=150,
    sentinel_threshold=3.0,
)


@pytest.mark.parametrize(
    "spec", [LearnerSpec("logistic_regression"), LearnerSpec("auto"), LearnerSpec("hoeffding_tree")], ids=str
)
def test_learn_batch_matches_learn_one_with_the_sentinel_alarming(spec: LearnerSpec) -> None:
    """The frozen copies answer through the batch's frozen-model path: the same alarms (details included) at the
    same labels, and the same decisions after them."""
    rows = _stream("classification", seed=3)
    examples = _examples(spec, "classification", rows, seed=4)

    def lifecycle() -> ModelLifecycle:
        lc = ModelLifecycle("m", "classification", spec, None, FAST_SENTINEL, GuardConfig(), release_every=25)
        lc.initial_release()
        return lc

    one, batched = lifecycle(), lifecycle()
    a, b = _run_one(one, examples), _run_batch(batched, examples, seed=5)
    assert [_outcome(r) for r in b] == [_outcome(r) for r in a]

    def sentinel_alarms(results: list[Any]) -> list[tuple[int, dict[str, str]]]:
        return [
            (e.index, e.details)
            for r in results
            if isinstance(r, list)
            for e in r
            if isinstance(e, DriftSignal) and e.details.get("test") == "frozen_snapshot"
        ]

    expected = sentinel_alarms(a)
    assert expected, "the stream must make the sentinel alarm"
    assert sentinel_alarms(b) == expected
