"""A very wide event through the quadratic member (``learners.features.Quadratic``): bounded work and memory.

Session 31's outside fuzz campaign (docs/experiments/fuzz31.py) sent FeatureEvents with 5,000 features. When the
default ``auto`` pool's quadratic LR member was the one answering, the scorer named all 12.5 million pairwise
products of such an event, kept them in the plan cache (about 1.6 GB) and built a 12.5-million-entry dict per event:
its RSS went from 170 MB to about 2 GB and stayed there, and each such event took 30-160 s. Only products whose
names the model learned (at most ``MAX_KEYS``) can carry a weight, so an event over ``MAX_PLAN_INPUTS`` inputs now
computes only those.
"""

from __future__ import annotations

import itertools
import random
import tracemalloc
from typing import Any

import pytest

import learners.features
from driftline.config import LearnerSpec
from learners.features import MAX_KEYS, MAX_PLAN_INPUTS, Quadratic, _ordered
from learners.specs import build_learner


def _wide(n: int, tag: str = "") -> dict[str, float]:
    rng = random.Random(n)
    return {f"{tag}{i}": rng.uniform(-2, 2) for i in range(n)}


def _narrow(rng: random.Random) -> dict[str, Any]:
    return {"a": rng.gauss(0, 1), "b": rng.gauss(0, 1), "c": rng.choice(["x", "y"])}


def _every_product(quad: Quadratic, x: dict[str, float]) -> dict[str, float]:
    """River's extender's outputs, left out as a full Quadratic leaves them out (the reference)."""
    names, values = list(x), list(x.values())
    out = dict(x)
    for i, j in itertools.combinations_with_replacement(range(len(names)), 2):
        out["*".join(map(str, _ordered(names[i], names[j])))] = values[i] * values[j]
    if quad._full:
        assert quad._known is not None
        return {k: v for k, v in out.items() if k in quad._known}
    return out


def test_a_wide_event_is_transformed_and_learned_within_the_bound() -> None:
    """1,200 inputs make 720,600 products: the old code named every one (a ~100 MB plan kept in the cache, a
    dict of 721,800 outputs per event); now the outputs are the inputs and the learned products only."""
    quad = Quadratic()
    quad.learn_one({"a": 1.0, "b": 2.0})
    wide = _wide(1200)
    tracemalloc.start()
    try:
        out = quad.transform_one(wide)  # serving: not learned
        assert len(out) <= len(wide) + MAX_KEYS  # the old code: 721,800
        quad.learn_one(wide)
        out = quad.transform_one(wide)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert quad._full and quad._known is not None and len(quad._known) == MAX_KEYS
    assert len(out) <= MAX_KEYS
    assert peak < 20 << 20  # bytes; the old code: ~200 MB
    assert out == _every_product(quad, wide)  # the outputs the whole plan gives, left out as before


@pytest.mark.parametrize("products", ["centred", "raw"])
def test_wide_path_gives_the_answers_of_the_whole_plan(
    monkeypatch: pytest.MonkeyPatch, products: str
) -> None:
    """The same model trained and asked with every event on the wide path (``MAX_PLAN_INPUTS`` lowered to 2) and
    on the whole plan: the same names learned, the same answers (to float rounding: outputs in another order)."""
    rng = random.Random(3)
    events = [_narrow(rng) for _ in range(300)]
    for i in range(0, 300, 7):
        events[i][f"new{i}"] = rng.gauss(0, 1)  # names that come and go
    probes = [_narrow(rng) | {"unseen": 1.5, "new7": 0.5} for _ in range(40)] + [_wide(40, "w")]
    spec = LearnerSpec("logistic_regression", {"degree": 2, "products": products})
    plain, wide = build_learner(spec), build_learner(spec)
    for x in events:
        y = (x["a"] + x["a"] * x["b"]) > 0
        plain.learn_one(dict(x), y)
    monkeypatch.setattr(learners.features, "MAX_PLAN_INPUTS", 2)
    for x in events:
        y = (x["a"] + x["a"] * x["b"]) > 0
        wide.learn_one(dict(x), y)
    assert wide.model["Quadratic"]._known == plain.model["Quadratic"]._known
    for x in probes:
        got, want = wide.predict_with_proba(x), plain.predict_with_proba(x)
        assert got[0] == want[0]
        assert got[1] == pytest.approx(want[1], rel=1e-9, abs=1e-12)


def test_wide_path_outputs_equal_the_whole_plan_full_or_not(monkeypatch: pytest.MonkeyPatch) -> None:
    """Under the bound every input passes and every learned product is computed; past it (full) the outputs are
    exactly the whole plan's, left out as before."""
    monkeypatch.setattr(learners.features, "MAX_PLAN_INPUTS", 2)
    quad = Quadratic()
    quad.learn_one({"a": 1.0, "b": 2.0, "c": 3.0})
    x = {"a": 0.5, "b": -1.0, "c": 2.0, "d": 4.0}  # d never learned
    out = quad.transform_one(x)
    assert out == {k: v for k, v in _every_product(quad, x).items() if k in x or k in quad._known}
    for i in range(MAX_KEYS):
        quad.learn_one({"a": 1.0, f"f{i}": 1.0})
    assert quad._full
    assert quad.transform_one(x) == _every_product(quad, x)
    mixed: dict[Any, float] = {1: 2.0, "a": 3.0, 0: 1.0}  # int names (River's generators) beside strings
    assert quad.transform_one(mixed) == _every_product(quad, mixed)


def test_a_scorer_serving_the_quadratic_member_scores_a_wide_event_within_bounded_memory() -> None:
    """The fuzz campaign's case through ``Scorer.process``: a JSON FeatureEvent with 1,200 features among good
    ones, served by a degree-2 logistic regression (the ``auto`` pool's quadratic member): every event predicted,
    and the batch's traced peak a few MB (the old code: ~250 MB for this event, ~3 GB for 5,000 features)."""
    from driftline.settings import load_settings
    from schemas.codec import default_codec
    from streams.metrics import build_metrics
    from streams.runtime import RawRecord, WorkerContext
    from streams.score import Scorer
    from tests.test_fuzz_stages import FakeProducer
    from tests.test_score_batch import _Follower

    codec = default_codec()
    rng = random.Random(5)
    model = build_learner(LearnerSpec("logistic_regression", {"degree": 2}))
    for _ in range(200):
        x = _narrow(rng)
        model.learn_one(x, x["a"] > 0)
    ctx = WorkerContext(
        load_settings(environ={}, overrides={"kafka.topic_prefix": "q."}),
        codec,
        build_metrics(),
        FakeProducer(),
    )
    scorer = Scorer(ctx, _Follower(model), store=None)  # type: ignore[arg-type]
    values = [{"id": f"e{i}", "ts": 1, "key": None, "features": _narrow(rng)} for i in range(20)]
    values[7]["features"] = _wide(1200)
    raws = [
        RawRecord("q.features", 0, i, None, codec.encode_json("FeatureEvent", v))
        for i, v in enumerate(values)
    ]
    tracemalloc.start()
    try:
        scored = scorer.process(raws)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert len(scored.contexts) == 20 and not ctx.out.on("deadletter")  # type: ignore[attr-defined]
    assert peak < 16 << 20  # bytes


def test_narrow_events_still_use_the_cached_plan() -> None:
    assert MAX_PLAN_INPUTS >= 90
    quad = Quadratic()
    x = _wide(20)
    quad.learn_one(x)
    assert quad._last is learners.features._quadratic_plan(tuple(x))[0]  # the shortcut of the usual example
    assert quad.transform_one(x) == _every_product(quad, x)


def test_a_few_feature_sets_over_the_small_cache_keep_their_plans() -> None:
    """100 numbers and a one-hot category of 3 values: 3 feature sets of 101 inputs, each over the small cache's
    width. Each plan is made once, not once per event (a cache of 2 made one per event: ~5x the time per event)."""
    quad = Quadratic()
    events = [{**_wide(100), f"color={c}": 1.0} for c in "rgb"]
    for x in events:
        quad.learn_one(x)
        quad.transform_one(x)
    made = learners.features._wide_plan.cache_info().misses
    for _ in range(3):
        for x in events:
            quad.transform_one(x)
    assert learners.features._wide_plan.cache_info().misses == made
