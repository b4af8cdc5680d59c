"""``BatchContext.frozen`` predicts a frozen model's rows a window at a time (``WINDOW``): every position of a long
batch, across window edges and model swaps (a release mid-batch), answers exactly as the learner itself."""

from __future__ import annotations

import copy

from bench.data import make_rows, pretrained
from driftline.config import LearnerSpec
from learners.batch import BatchContext


def test_frozen_windows_equal_the_learner_across_edges_and_swaps() -> None:
    spec = LearnerSpec("logistic_regression")
    first = pretrained(spec, make_rows(300, seed=3))
    second = copy.deepcopy(first)
    for _, x, y in make_rows(300, seed=4):
        second.learn_one(x, y)
    rows = make_rows(3 * BatchContext.WINDOW + 37, seed=5)
    ctx = BatchContext([x for _, x, _ in rows])
    # Swaps at arbitrary positions, as releases fall: the new model's window starts where it is first asked.
    swap_at = {
        0: first,
        100: second,
        101: first,
        BatchContext.WINDOW + 5: second,
        2 * BatchContext.WINDOW: first,
    }
    model = first
    compared = 0
    for pos in range(len(rows)):
        model = swap_at.get(pos, model)
        xc = ctx.cleaned(pos)
        got = ctx.frozen(model, pos, xc)
        want = model.predict_with_proba(xc, cleaned=True)
        assert got[0] == want[0], pos
        assert got[1].keys() == want[1].keys(), pos
        for k, p in want[1].items():
            assert abs(got[1][k] - p) <= 1e-12, (pos, k)
        compared += 1
    assert compared == len(rows)
    # The batch path answered (not the learner's per-event fallback, which would make this test vacuous).
    assert all(entry[1] is not None and entry[3] is not None for entry in ctx._frozen.values())
    ctx.close()


def _assert_same(got: tuple, want: tuple, where: object) -> None:
    assert got[0] == want[0], where
    assert got[1].keys() == want[1].keys(), where
    for k, p in want[1].items():
        assert abs(got[1][k] - p) <= 1e-12, (where, k)


def _count_entries(ctx: BatchContext) -> list:
    """The learners ``ctx`` builds a cache entry for, in order, from now on."""
    built = []
    original = ctx._entry

    def counting(learner: object) -> list:
        built.append(learner)
        return original(learner)

    ctx._entry = counting  # type: ignore[method-assign]
    return built


def test_a_replaced_snapshot_keeps_its_entry_as_the_previous_model() -> None:
    # As learn_batch asks after each release: the new served snapshot, and the one it replaced (probation's
    # previous model). More releases in one batch than MAX_FROZEN, so entries must be evicted, and the previous
    # model's must not be among them.
    spec = LearnerSpec("logistic_regression")
    count = BatchContext.MAX_FROZEN + 2
    models = [pretrained(spec, make_rows(200 + 40 * k, seed=10 + k)) for k in range(count)]
    rows = make_rows(count * 50, seed=6)
    ctx = BatchContext([x for _, x, _ in rows])
    built = _count_entries(ctx)
    for pos in range(len(rows)):
        k = pos // 50
        served, previous = models[k], models[k - 1] if k else None
        xc = ctx.cleaned(pos)
        _assert_same(ctx.frozen(served, pos, xc), served.predict_with_proba(xc, cleaned=True), pos)
        if previous is not None:
            if pos % 50 == 0:  # the entry it had as the served model is the one answering now
                assert ctx._frozen[id(previous)][0] is previous, pos
            got = ctx.frozen(previous, pos, xc)
            _assert_same(got, previous.predict_with_proba(xc, cleaned=True), pos)
        assert len(ctx._frozen) <= BatchContext.MAX_FROZEN
    # One entry per model: none was built twice (the clear-all eviction rebuilt the previous model's).
    assert [id(m) for m in built] == [id(m) for m in models]
    ctx.close()


def test_a_new_entry_predicts_a_short_window_first_then_doubles() -> None:
    spec = LearnerSpec("logistic_regression")
    model = pretrained(spec, make_rows(300, seed=3))
    n = BatchContext.FIRST_WINDOW * 7
    rows = make_rows(n, seed=8)
    ctx = BatchContext([x for _, x, _ in rows])
    spans = []
    for pos in range(n):
        xc = ctx.cleaned(pos)
        _assert_same(ctx.frozen(model, pos, xc), model.predict_with_proba(xc, cleaned=True), pos)
        entry = ctx._frozen[id(model)]
        if not spans or spans[-1] != (entry[4], entry[5]):
            spans.append((entry[4], entry[5]))
    first = BatchContext.FIRST_WINDOW
    sizes = [hi - lo for lo, hi in spans]
    assert sizes[:3] == [first, 2 * first, min(4 * first, BatchContext.WINDOW)]
    assert max(sizes) == BatchContext.WINDOW and spans[-1][1] == n
    ctx.close()


def test_seven_models_asked_at_every_label_keep_their_entries() -> None:
    # What learn_batch asks at each label in a quiet stretch: the served snapshot, probation's previous model, the
    # reference snapshot (lifecycle.WATCH_LABELS) and up to four sentinel copies while early copies overlap. Each
    # is built once for the batch; with room for six (before session 24) one still asked was evicted at every
    # label and rebuilt (a mirror and a numpy pass per label).
    spec = LearnerSpec("logistic_regression")
    models = [pretrained(spec, make_rows(200 + 40 * k, seed=20 + k)) for k in range(7)]
    rows = make_rows(300, seed=9)
    ctx = BatchContext([x for _, x, _ in rows])
    built = _count_entries(ctx)
    for pos in range(len(rows)):
        xc = ctx.cleaned(pos)
        for k, model in enumerate(models):
            if k % 2:
                _assert_same(ctx.frozen(model, pos, xc), model.predict_with_proba(xc, cleaned=True), (pos, k))
            else:
                assert ctx.frozen_label(model, pos, xc, True) == model.predict_one(xc, cleaned=True), (pos, k)
    assert [id(m) for m in built] == [id(m) for m in models]
    ctx.close()
