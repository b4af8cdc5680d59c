"""``Evaluator.snapshot`` reads the rolling metrics off the cumulative ones while nothing has left the window
(session 23): the same values, bit for bit, as computing them from the rolling totals, before and after the
window fills, through ``update`` and ``defer`` alike. (An equivalence: it passes on the base too.)"""

from __future__ import annotations

import math
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from learners.evaluation import Evaluator

PROPS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

label = st.sampled_from(["a", "b", "c", None])
proba = st.one_of(st.none(), st.dictionaries(st.sampled_from(["a", "b", "c"]), st.floats(0, 1), max_size=3))
step = st.tuples(label, label, proba, st.booleans())


def _reference(ev: Evaluator) -> dict[str, float]:
    """The snapshot as it was computed before session 23: the rolling metrics from the rolling totals."""
    ev.flush()
    out: dict[str, float] = {"n": float(ev._n)}
    if ev._n:
        classification = ev.task == "classification"
        cumulative = ev._all.classification() if classification else ev._all.regression()
        rolling = ev._recent.classification() if classification else ev._recent.regression()
        for name, value in cumulative.items():
            out[name] = float(value)
            out[f"rolling_{name}"] = float(rolling[name])
    key = "accuracy" if ev.task == "classification" else "mae"
    for segment, (n, score) in ev.segment_scores().items():
        out[f"segment.{segment}.{key}"] = score
        out[f"segment.{segment}.n"] = float(n)
    return {k: v for k, v in out.items() if math.isfinite(v)}


@PROPS
@given(st.lists(step, max_size=40), st.integers(1, 12))
def test_classification_snapshot_equals_the_rolling_totals_metrics(steps: list[Any], window: int) -> None:
    ev = Evaluator("classification", window=window)
    for y, p, pr, deferred in steps:
        (ev.defer if deferred else ev.update)(y, p, pr, None)
        got, want = ev.snapshot(), _reference(ev)
        assert got == want and list(got) == list(want)


@PROPS
@given(st.lists(st.tuples(st.floats(-1e6, 1e6), st.floats(-1e6, 1e6)), max_size=30), st.integers(1, 10))
def test_regression_snapshot_equals_the_rolling_totals_metrics(pairs: list[Any], window: int) -> None:
    ev = Evaluator("regression", window=window)
    for y, p in pairs:
        ev.update(y, p)
        assert ev.snapshot() == _reference(ev)


ops = st.lists(
    st.tuples(label.filter(lambda v: v is not None), label, st.sampled_from([1.0, 2.0, 0.5]), st.booleans()),
    max_size=40,
)


@PROPS
@given(ops)
def test_macro_scores_are_rivers_macro_metrics(steps: list[Any]) -> None:
    """``macro_scores`` against River's three metric objects on matrices built and partly reverted alike: the same
    floats, and the matrices left the same (River's reads insert zero entries; so must these)."""
    from river import metrics

    from learners.evaluation import macro_scores

    ours, theirs = metrics.ConfusionMatrix(), metrics.ConfusionMatrix()
    done: list[Any] = []
    for y, p, w, revert in steps:
        for cm in (ours, theirs):
            if revert and done:
                cm.revert(*done[0])
            else:
                cm.update(y, p, w)
        if revert and done:
            done.pop(0)
        elif not revert:
            done.append((y, p, w))
        want = (
            metrics.MacroPrecision(cm=theirs).get(),
            metrics.MacroRecall(cm=theirs).get(),
            metrics.MacroF1(cm=theirs).get(),
        )
        got = macro_scores(ours)
        assert got == want and [type(v) for v in got] == [type(v) for v in want]
        assert dict(ours.sum_row) == dict(theirs.sum_row) and list(ours.sum_row) == list(theirs.sum_row)
        assert dict(ours.sum_col) == dict(theirs.sum_col) and list(ours.sum_col) == list(theirs.sum_col)
        assert {k: dict(v) for k, v in ours.data.items()} == {k: dict(v) for k, v in theirs.data.items()}
