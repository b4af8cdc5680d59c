"""``Evaluator.defer`` (queued, applied in one loop at the next read) leaves exactly the state ``update`` per example
leaves: the same metrics, bit for bit, and the same confusion matrices, running sums and window, whatever the
points at which it is read or flushed."""

from __future__ import annotations

import math
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from learners.evaluation import Evaluator

PROPS = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])

label = st.sampled_from(["a", "b", "c", True, None])
prob = st.one_of(st.floats(0, 1), st.sampled_from([0.0, 1.0, 1e-300, math.nan]))
proba = st.one_of(
    st.none(), st.just({}), st.dictionaries(st.sampled_from(["a", "b", "c", True]), prob, max_size=3)
)
step = st.tuples(label, label, proba, st.sampled_from([None, None, "s1", "s2"]), st.integers(0, 9))


def _canon(obj: Any) -> Any:
    """``obj`` with NaN made comparable (a NaN probability gives a NaN loss on both paths)."""
    if isinstance(obj, float) and math.isnan(obj):
        return "nan"
    if isinstance(obj, dict):
        return {k: _canon(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_canon(v) for v in obj]
    return obj


def _state(ev: Evaluator) -> list[Any]:
    out: list[Any] = [ev.n, ev.snapshot(), ev.segment_scores(), list(ev._window)]
    for totals in (ev._all, ev._recent):
        cm = totals.cm
        matrix = {k: {c: v for c, v in row.items() if v} for k, row in cm.data.items()}
        out += [totals.n, totals.correct, totals.loss, {k: v for k, v in matrix.items() if v}]
        out += [cm.n_samples, cm.total_weight, cm._total_true_positives]
        out += [{k: v for k, v in cm.sum_row.items() if v}, {k: v for k, v in cm.sum_col.items() if v}]
    return _canon(out)


@PROPS
@given(stream=st.lists(step, max_size=60), window=st.integers(1, 7))
def test_deferred_updates_leave_the_state_of_updates_per_example(stream: list[Any], window: int) -> None:
    eager, lazy = Evaluator("classification", window), Evaluator("classification", window)
    for y, pred, p, segment, look in stream:
        eager.update(y, pred, p, segment)
        lazy.defer(y, pred, p, segment)
        if look == 0:  # a reader in the middle of a batch (a release's snapshot)
            assert lazy.snapshot() == eager.snapshot()
        elif look == 1:
            lazy.update(y, pred, p, segment)  # an eager update after queued ones: the queue comes first
            eager.update(y, pred, p, segment)
    assert _state(lazy) == _state(eager)
    assert lazy._pending == []


def test_a_long_deferred_stream_reads_exactly_like_the_eager_one() -> None:
    import random

    rng = random.Random(4)
    eager, lazy = Evaluator("classification", 50), Evaluator("classification", 50)
    for i in range(3000):
        y = rng.random() < 0.4
        pred = y if rng.random() < 0.8 else (not y)
        p = {True: (q := rng.random()), False: 1.0 - q}
        eager.update(y, pred, p)
        lazy.defer(y, pred, p)
        if i % 487 == 0:
            assert lazy.snapshot() == eager.snapshot()
    lazy.flush()
    assert _state(lazy) == _state(eager)
    assert lazy.snapshot()["log_loss"] == eager.snapshot()["log_loss"]  # equal, not close


def test_regression_is_applied_at_once() -> None:
    ev = Evaluator("regression")
    ev.defer(1.0, 1.5)
    assert ev._pending == [] and ev.snapshot()["mae"] == 0.5


def test_an_evaluator_pickled_before_defer_existed_loads() -> None:
    import pickle

    ev = Evaluator("classification")
    ev.update(True, True, {True: 0.9})
    state = dict(ev.__dict__)
    del state["_pending"]
    state["n"] = state.pop("_n")  # the old layout
    old = Evaluator.__new__(Evaluator)
    old.__setstate__(state)
    assert pickle.loads(pickle.dumps(old)).snapshot() == ev.snapshot()
