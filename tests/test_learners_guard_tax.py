"""The guard tax, measured: the quick accuracy suite (``python bench/accuracy.py --quick``) in ``make test``.

The guarded default (``driftline replay`` with default settings) must score within 0.5 accuracy points of the best
plain learner learning every label at the same delay (MAE within 2 % for regression) on a total concept reversal,
abrupt concept changes, a 10-class stream and two regression streams (recurring abrupt drift, and local expanding
drift). The bound is the
issue's goal; it is not loosened to pass.
"""

from __future__ import annotations

from bench.accuracy import QUICK, QUICK_N, run, table

BOUND = {"classification": 0.5, "regression": 2.0}  # accuracy points / % of MAE


def test_guard_tax_on_the_quick_suite_is_within_the_bound() -> None:
    rows = run(list(QUICK), QUICK_N, [1], workers=1)
    assert {r["stream"] for r in rows} == set(QUICK)
    report = table(rows)
    for r in rows:
        assert "error" not in r, report  # the default works on every task and number of classes
        assert r["tax"] <= BOUND[r["task"]], report
        if r["task"] == "classification":
            # Every abrupt drift of these streams is alarmed within 2,000 events. (Not asserted for regression:
            # ADWIN on the absolute error misses one of friedman-gra's two drifts at this length; the table in
            # BENCHMARKS-accuracy.md reports it.)
            assert r["detected"] == r["drifts"], report
