"""The score stage's batch path, through ``Scorer.process`` (no Kafka: a recording producer): the Predictions it
publishes carry the same answers as ``predict_with_proba`` per event, bad records still go to ``deadletter`` alone,
and ``model.explain`` still explains each one."""

from __future__ import annotations

import random
from typing import Any

import pytest

from driftline.config import LearnerSpec
from driftline.settings import load_settings
from learners.drift import FeatureDriftMonitor
from learners.explain import explain_one
from learners.specs import build_learner
from schemas.codec import default_codec
from streams.metrics import build_metrics
from streams.releases import LoadedModel
from streams.runtime import RawRecord, WorkerContext
from streams.score import WATCH_EVERY, Scorer
from tests.test_fuzz_stages import FakeProducer

CODEC = default_codec()


class _Follower:
    """Hands the scorer one release, once."""

    def __init__(self, model: Any) -> None:
        self.loaded: Any = LoadedModel(3, model, {}, 0.0)

    def take(self) -> Any:
        loaded, self.loaded = self.loaded, None
        return loaded

    def served(self, model: str, version: int) -> None:
        pass


def _model(kind: str) -> Any:
    rng = random.Random(1)
    model = build_learner(LearnerSpec(kind))
    for _ in range(400):
        x = {"a": rng.gauss(0, 1), "b": rng.gauss(0, 1), "kind": rng.choice(["x", "y"])}
        model.learn_one(x, "up" if x["a"] + 0.3 * x["b"] > 0 else "down")
    return model


def _events(n: int) -> list[bytes]:
    rng = random.Random(2)
    out = []
    for i in range(n):
        features: dict[str, Any] = {"a": rng.gauss(0, 1), "b": rng.gauss(0, 1)}
        if i % 4 == 1:
            features["kind"] = rng.choice(["x", "y", "unseen"])  # a string feature: the cleaning path
        if i % 4 == 2:
            features["b"] = None  # missing
        if i % 4 == 3:
            features["new"] = 5.0  # a feature the model never saw
        value = {"id": f"e{i}", "ts": i, "key": None, "features": features}
        out.append(CODEC.encode("FeatureEvent", value) if i % 2 else CODEC.encode_json("FeatureEvent", value))
    return out


def _scorer(overrides: dict[str, object] | None = None) -> tuple[WorkerContext, Scorer]:
    """A scorer of a logistic regression (prefix ``b.``) writing to a FakeProducer (``ctx.out``)."""
    settings = load_settings(environ={}, overrides={"kafka.topic_prefix": "b.", **(overrides or {})})
    ctx = WorkerContext(settings, CODEC, build_metrics(), FakeProducer())
    return ctx, Scorer(ctx, _Follower(_model("logistic_regression")), store=None)  # type: ignore[arg-type]


@pytest.mark.parametrize("kind", ["logistic_regression", "auto", "hoeffding_tree"])
@pytest.mark.parametrize("explain", [False, True])
def test_scorer_batch_answers_equal_per_event(kind: str, explain: bool) -> None:
    overrides = {"kafka.topic_prefix": "b.", "model.explain": explain}
    ctx = WorkerContext(
        load_settings(environ={}, overrides=overrides), CODEC, build_metrics(), FakeProducer()
    )
    model = _model(kind)
    scorer = Scorer(ctx, _Follower(model), store=None)  # type: ignore[arg-type]
    batch = _events(60)
    batch.insert(7, b"\xc3\x01 not a record")  # one undecodable record among them
    raws = [RawRecord("b.features", 0, i, f"e{i}".encode(), v) for i, v in enumerate(batch)]
    scored = scorer.process(raws)
    assert scorer.version == 3
    if kind == "logistic_regression":
        assert scorer.batch is not None and scorer.batch.batched  # the numpy mirror served it
    producer: FakeProducer = ctx.out  # type: ignore[assignment]
    predictions = producer.on("predictions")
    dead = producer.on("deadletter")
    assert len(predictions) == len(scored.contexts) == 60 and len(dead) == 1
    for p in predictions:
        pred, proba = model.predict_with_proba(p["features"])
        assert p["prediction"] == pred and p["version"] == 3
        assert p["proba"] == pytest.approx({str(k): v for k, v in proba.items()}, rel=1e-9, abs=1e-12)
        if explain:
            method, contributions = explain_one(model, p["features"], pred)
            assert p["explanation_method"] == method
            assert p["explanation"] == pytest.approx(contributions)
        else:
            assert p["explanation"] is None


def test_feature_drift_runs_per_block_with_the_alarms_of_the_per_event_path(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Small batches are buffered for the feature monitors (one vectorised pass per block): the same alarms at the
    same event indices as one monitor fed every event, published once a block is due or when the worker idles."""
    monkeypatch.setattr(
        "streams.score.WATCH_WITHIN_S", 3600.0
    )  # blocks by count only: a slow machine is no flush
    ctx, scorer = _scorer()
    rng = random.Random(3)
    # Shifted from 2 * WATCH_EVERY + 100 on: alarmed inside the third block, which the events below do not fill.
    shift = 2 * WATCH_EVERY + 100
    values = [
        {"id": f"e{i}", "ts": i, "key": None,
         "features": {"a": rng.gauss(0, 1) + (4.0 if i >= shift else 0.0), "b": rng.gauss(0, 1)}}
        for i in range(3 * WATCH_EVERY - 6)
    ]  # fmt: skip
    monitor = FeatureDriftMonitor(ctx.settings.drift)
    expected = [(s.signal, s.index) for s in monitor.update_many([v["features"] for v in values], 1)]
    assert [signal for signal, _ in expected] == ["feature:a"] and expected[0][
        1
    ] > shift  # the shift is alarmed

    producer: FakeProducer = ctx.out  # type: ignore[assignment]

    def alarms() -> list[tuple[str, int]]:
        drift = [CODEC.decode("DriftEvent", data) for t, data, _ in producer.sent if t == "b.drift"]
        assert all(d["version"] == 3 and d["detector"] == "page_hinkley" for d in drift)
        return [(d["signal"], d["index"]) for d in drift]

    for start in range(0, len(values), 3):  # batches of 3, as a worker sees them at low rates
        batch = values[start : start + 3]
        scorer.process([RawRecord("b.features", 0, i, None, CODEC.encode("FeatureEvent", v)) for i, v in
                        enumerate(batch, start)])  # fmt: skip
    assert alarms() == []  # the third block is not full yet: its events wait
    scorer.idle()  # an idle worker runs what is buffered
    assert alarms() == expected


def test_a_dead_letter_names_the_stage_that_refused_it() -> None:
    """DeadLetter.stage (schemas/DeadLetter.avsc: "Stage that rejected it") is filled, not left at its default."""
    ctx, scorer = _scorer()
    bad = CODEC.encode_json(
        "FeatureEvent", {"id": "e0", "ts": 0, "key": None, "features": {}, "model": "../x"}
    )
    scorer.process([RawRecord("b.features", 0, 0, b"e0", bad)])
    dead = ctx.out.on("deadletter")  # type: ignore[attr-defined]
    assert [(d["stage"], d["offset"]) for d in dead] == [("score", 0)]
    assert "cannot name a model" in dead[0]["error"]


def test_a_huge_model_name_is_not_echoed_whole_into_the_dead_letter_or_the_log(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A model name of half a megabyte (a record under serving.max_record_bytes) is refused naming a short prefix
    of it: neither the DeadLetter's error nor the worker's log line repeats the whole name."""
    ctx, scorer = _scorer({"routing.feature": "tenant"})
    huge = "t" * 500_000
    events = [
        {"id": "e0", "ts": 0, "key": None, "features": {}, "model": huge},
        {"id": "e1", "ts": 0, "key": None, "features": {"tenant": huge}},
    ]
    raws = [
        RawRecord("b.features", 0, i, None, CODEC.encode_json("FeatureEvent", e))
        for i, e in enumerate(events)
    ]
    with caplog.at_level("WARNING"):
        scorer.process(raws)
    dead = ctx.out.on("deadletter")  # type: ignore[attr-defined]
    assert len(dead) == 2
    for d in dead:
        assert "cannot name a model" in d["error"] and "500000 characters" in d["error"]
        assert len(d["error"]) < 1_000
    assert caplog.records and max(len(r.getMessage()) for r in caplog.records) < 2_500
