"""The segments tracked are the ones a stream sends now, not the first ones it sent.

The live fairness monitor kept its first 50 segment values and the evaluator (a release's ``segment.*`` metrics)
its first 100 for ever: a stream opening with that many junk values sent every real segment to the pooled
``_other``/``other`` for good. Now the least recently seen segment is folded into the pool when a new one arrives,
so memory and Prometheus label cardinality stay bounded while the segments that matter now are tracked.
"""

from __future__ import annotations

import pickle

from prometheus_client import CollectorRegistry

from driftline.settings import load_settings
from learners import evaluation
from learners.evaluation import Evaluator
from learners.fairness import MAX_SEGMENTS, OTHER, FairnessMonitor
from streams.fairness_metrics import ServedFairness
from streams.metrics import build_metrics


def junk_then_real(monitor: FairnessMonitor, junk: int) -> None:
    for i in range(junk):
        monitor.add(f"junk{i}", 1, 1)
    for i in range(200):
        monitor.add("north" if i % 2 else "south", i % 3 == 0, True)


def test_real_segments_after_junk_are_tracked_by_the_live_monitor() -> None:
    m = FairnessMonitor("classification", window=1000)
    junk_then_real(m, MAX_SEGMENTS)
    rates = m.rates()
    assert rates["north"]["n"] == 100 and rates["south"]["n"] == 100
    assert len(rates) <= MAX_SEGMENTS + 1
    # The two junk values seen first were folded into the pool, their rows still counted there.
    assert rates[OTHER]["n"] == 2 and "junk0" not in rates and f"junk{MAX_SEGMENTS - 1}" in rates


def test_a_flood_of_distinct_values_keeps_the_recurring_segments_and_stays_bounded() -> None:
    m = FairnessMonitor("classification", window=1000)
    for i in range(20_000):
        m.add(f"uuid-{i}", 1, 1)
        m.add("north" if i % 2 else "south", 1, i % 4 == 0)
    rates = m.rates()
    assert len(rates) == MAX_SEGMENTS + 1
    assert rates["north"]["n"] == 1000 and rates["south"]["n"] == 1000
    assert rates["south"]["positive_rate"] == 0.5 and rates["north"]["positive_rate"] == 0.0


def test_fewer_segments_than_the_cap_are_never_pooled() -> None:
    m = FairnessMonitor("classification", window=1000)
    for i in range(10_000):
        m.add(f"s{i % MAX_SEGMENTS}", 1, 1)
    rates = m.rates()
    assert OTHER not in rates and len(rates) == MAX_SEGMENTS
    assert all(r["n"] == 10_000 / MAX_SEGMENTS for r in rates.values())


def test_a_monitor_pickled_before_eviction_loads_and_evicts() -> None:
    m = FairnessMonitor("classification")
    junk_then_real(m, 0)
    old = pickle.loads(pickle.dumps(m))
    del old.__dict__["_seen"], old.__dict__["_clock"]  # what a monitor of the previous version pickled
    restored = pickle.loads(pickle.dumps(old))
    junk_then_real(restored, MAX_SEGMENTS)  # the restored segments are the oldest: folded first
    rates = restored.rates()
    assert rates["north"]["n"] == 100 and rates[OTHER]["n"] == 200 + 2 and len(rates) == MAX_SEGMENTS + 1


def test_real_segments_after_junk_reach_the_release_metrics() -> None:
    cap = evaluation.MAX_SEGMENTS
    for deferred in (False, True):
        ev = Evaluator("classification")
        add = ev.defer if deferred else ev.update
        for i in range(cap):
            add(1, 1, {1: 1.0}, f"junk{i}")
        for i in range(100):
            add(1, 1 if i % 4 else 0, {1: 0.5}, "north")
        snap = ev.snapshot()
        assert snap["segment.north.n"] == 100 and snap["segment.north.accuracy"] == 0.75
        assert snap["segment.other.n"] == 1 and "segment.junk0.n" not in snap
        assert sum(1 for k in snap if k.endswith(".n") and k.startswith("segment.")) == cap + 1


def test_an_evaluator_pickled_before_eviction_loads_and_evicts() -> None:
    ev = Evaluator("classification")
    ev.update(1, 1, {1: 1.0}, "a")
    del ev.__dict__["_seen"], ev.__dict__["_clock"]
    restored = pickle.loads(pickle.dumps(ev))
    for i in range(evaluation.MAX_SEGMENTS + 5):
        restored.update(1, 1, {1: 1.0}, f"s{i}")
    scores = restored.segment_scores()
    assert "a" not in scores and scores["other"][0] == 6 and len(scores) == evaluation.MAX_SEGMENTS + 1


def test_the_served_metrics_follow_the_tracked_segments_and_stay_bounded() -> None:
    settings = load_settings(environ={}, overrides={"model.segment_feature": "region"})
    registry = CollectorRegistry()
    served = ServedFairness(settings, build_metrics(registry))
    for i in range(MAX_SEGMENTS):
        served.add({"features": {"region": f"junk{i}"}, "label": 1, "prediction": 1})
    served.publish()
    for i in range(3 * MAX_SEGMENTS):
        served.add({"features": {"region": f"late{i}"}, "label": 1, "prediction": 1})
        served.add({"features": {"region": "north"}, "label": 1, "prediction": 1})
    served.publish()
    segments = {
        s.labels["segment"]
        for metric in registry.collect()
        if metric.name == "driftline_fairness_rate"
        for s in metric.samples
    }
    assert "north" in segments and "junk0" not in segments and OTHER in segments
    assert len(segments) == MAX_SEGMENTS + 1


def test_a_gap_not_measured_is_left_out_of_the_metrics_not_reported_as_zero() -> None:
    """outside36: ``driftline_fairness_gap`` read 0.0 while fewer than two segments had 30 examples, which a
    dashboard cannot tell from "no gap". The series appear once two segments can be compared."""
    settings = load_settings(environ={}, overrides={"model.segment_feature": "region"})
    registry = CollectorRegistry()
    served = ServedFairness(settings, build_metrics(registry))

    def gap_series() -> dict[str, float]:
        return {
            s.labels["gap"]: s.value
            for metric in registry.collect()
            if metric.name == "driftline_fairness_gap"
            for s in metric.samples
        }

    for i in range(10):
        served.add({"features": {"region": "north"}, "label": i % 2, "prediction": 1})
    assert served.publish()["gaps"] == {} and gap_series() == {}  # one segment of 10: nothing measured
    for i in range(40):
        served.add({"features": {"region": "north"}, "label": i % 2, "prediction": 1})
        served.add({"features": {"region": "south"}, "label": i % 2, "prediction": i % 2})
    published = served.publish()["gaps"]
    assert published["accuracy"] > 0.3 and gap_series()["accuracy"] == published["accuracy"]
