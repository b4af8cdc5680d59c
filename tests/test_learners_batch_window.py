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
