"""The incremental (non-inferiority) test started afresh once its wealth has sunk below ``-SINK``: measured in
session 10 at -3, wired in in session 11 at ``log(alpha)`` (-3.0 at the default alpha 0.05; ``IncrementalPolicy``);
``off`` replays without it (BENCHMARKS-accuracy.md).

Why: what holds mv-shift's good candidate after its shift (``guard_log.py mv-shift 100 20000 9750 13250``) is the
champion's non-inferiority test against the snapshot released at ~10,300: right after a release the champion
answers almost as the snapshot does, so the paired differences' variance is tiny and aGRAPA bets at its cap; then
the champion, learning the new concept fast, moves away from the snapshot, a few differences near +1 cost up to
80 % of the wealth each, and the log wealth sinks to -50 in 700 pairs although the champion is the better model
(MAE 14 against 15-18). Nothing is released for 2,400 labels, until the challenger wins. A test whose wealth has
sunk that far no longer decides anything (it would need thousands of pairs to climb back); starting a fresh one
is what the policy already does after ``max_examples`` pairs. Each fresh test is valid at ``alpha`` on its own.

    PYTHONPATH=. python docs/experiments/sink_restart.py mv-shift,linear-reversal 20000 100 off,3
    PYTHONPATH=. python docs/experiments/sink_restart.py poisoning 12000 1 off,3
    PYTHONPATH=. python docs/experiments/sink_restart.py elec 0 1 off,3

Prints what ``faded_bets.py`` prints (served loss, best plain, tax, recovery, promotions); unseen streams replay
with the CLI's lifecycle seed 0, the suite's with its seed.
"""

from __future__ import annotations

import collections
import functools
import sys
import time
from typing import Any

from bench import accuracy as A
from bench import unseen as U
from docs.experiments.faded_bets import collect, rows_of
from learners import policies as P
from learners.replay import replay


def sink(level: float | None) -> None:
    """Patch ``IncrementalPolicy.observe``: after each pair, a fresh test when the log wealth is below -level (never
    when ``level`` is None: session 10's policy)."""

    def observe(self: P.IncrementalPolicy, *args: Any) -> None:
        self.evidence.add(*args)
        if level is not None and self.evidence.not_worse.log_wealth < -level:
            self.restart()

    P.IncrementalPolicy.observe = observe  # type: ignore[method-assign,assignment]


def main() -> int:
    names, n, seed = sys.argv[1].split(","), int(sys.argv[2]), int(sys.argv[3])
    levels = [None if v == "off" else float(v) for v in sys.argv[4].split(",")]
    for name in names:
        if name == "poisoning":
            for level in levels:
                sink(level)
                print(f"poisoning seed {seed} sink {level}: {A.poisoning(n, seed)}", flush=True)
            continue
        delay = 48 if name == "elec" else U.DELAY
        unseen = name in U.STREAMS
        if unseen:
            rows, points, task, gradual = rows_of(name, n or 20000, seed)
        else:  # a bench.accuracy stream (faded_bets.rows_of tries bench.unseen first, which exits on other names)
            rows, points = A.make_stream(name, n or 20000, seed)
            task, gradual = A.STREAMS[name], name in A.GRADUAL
        specs = {"LR": A.LearnerSpec("linear_regression" if task == "regression" else "logistic_regression")}
        specs["HT"] = A.LearnerSpec("hoeffding_tree")
        plains = {k: A.plain(rows, s, task, delay, 0)["losses"] for k, s in specs.items()}
        best = min(plains, key=lambda k: sum(plains[k]))
        b = sum(plains[best]) / len(rows)
        for level in levels:
            sink(level)
            t0 = time.process_time()
            lc = A.default_lifecycle(task, 0 if unseen else seed)
            preds: list[Any] = []
            result = replay(rows, lc, delay=delay, on_prediction=functools.partial(collect, preds))
            losses = [A._loss(task, p, y) for p, (_, _, _, y) in zip(preds, rows, strict=True)]
            g = sum(losses) / len(rows)
            tax = 100 * (g - b) if task == "classification" else 100 * (g / b - 1)
            rec = [] if gradual else A.recovery(task, losses, plains[best], points, len(rows))
            summary = result.summary()
            reasons = collections.Counter(p["reason"] for p in summary["promotions"])
            print(
                f"{name} seed {seed} sink {level}: served {g:.4f} best plain {best} {b:.4f} tax {tax:+.2f}"
                f"{' %' if task == 'regression' else ' pts'} recovery {rec} promotions {dict(reasons)}"
                f" rollbacks {len(summary['rollbacks'])} cpu {time.process_time() - t0:.0f}s",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
