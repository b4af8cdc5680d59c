"""A hostile ``model.segment_feature`` value: unicode, markup, 10,000 characters, thousands of distinct values.

The number of segments was bounded (50 live, 100 per release's metrics), but not the length of a segment's name: a
10,000-character value became a Prometheus label of 10,000 characters on each of its 5 rate series and a
``segment.<value>.accuracy`` key of every release's metrics, the models topic and the audit chain (a value may be as
long as the broker's largest message). Found by outside16.
"""

from __future__ import annotations

from learners.evaluation import segment_of
from learners.fairness import MAX_SEGMENT_CHARS, FairnessMonitor


def test_a_long_segment_value_is_named_by_a_bounded_distinct_name() -> None:
    long_a, long_b = "x" * 10_000, "x" * 9_999 + "y"
    a, b = segment_of({"seg": long_a}, "seg"), segment_of({"seg": long_b}, "seg")
    assert a is not None and b is not None
    assert len(a) <= MAX_SEGMENT_CHARS and len(b) <= MAX_SEGMENT_CHARS
    assert a != b and a.startswith("xxxx")
    for short in ("é", "<script>alert(1)</script>", "a\nb", "😀", "", "0" * MAX_SEGMENT_CHARS):
        assert segment_of({"seg": short}, "seg") == short
    assert segment_of({}, "seg") == "missing"


def test_the_live_monitor_names_segments_as_the_releases_do() -> None:
    monitor = FairnessMonitor("classification")
    # (the named ones last: the segments seen least recently are folded into one)
    values = [*[f"u{i}" for i in range(10_000)], "x" * 10_000, "é", None]
    for i, value in enumerate(values):
        monitor.add(value, i % 2 == 0, True)
    rates = monitor.rates()
    assert max(len(s) for s in rates) <= MAX_SEGMENT_CHARS
    assert segment_of({"seg": "x" * 10_000}, "seg") in rates and "é" in rates and "missing" in rates
    assert len(rates) <= 51  # 50 segments and the rest folded into one
