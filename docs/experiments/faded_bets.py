"""The e-processes' bets from a faded mean of past differences instead of the mean since the test began: measured,
not wired in (session 9: mv-shift's recovery 2,375 -> 275 events, but elec and the poisoning bursts got worse;
BENCHMARKS-accuracy.md). Fade 1.0 is the rule as shipped.

Why: ``EProcess`` picks each bet (aGRAPA) from the shrunk mean and variance of *all* past paired differences. When
the candidate starts worse and becomes better (a challenger's cold start after a drift, or a champion through a
transition), the mean since the start stays on the wrong side of the margin long after the recent differences
crossed it, so the test bets nothing and the evidence waits (mv-shift at seed 100: no release for 2,400 labels
after its shift). Any bet computed from past differences only keeps the wealth a supermartingale under H0, so a
faded mean is exactly as valid; the question is what it does to accuracy.

    PYTHONPATH=. python docs/experiments/faded_bets.py mv-shift,linear-reversal 20000 100 1.0,0.995 [challenger]
    PYTHONPATH=. python docs/experiments/faded_bets.py poisoning 12000 1 1.0,0.995 [challenger]

Each stream (a ``bench.unseen`` name, else a ``bench.accuracy`` one) is replayed in process with the defaults,
the bets' sums faded by each factor (1.0 = as shipped); prints the served loss, the best plain learner's, the
recovery after each abrupt drift, and the promotions by reason.
"""

from __future__ import annotations

import collections
import functools
import math
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import accuracy as A
from bench import unseen as U
from learners import guard as G
from learners import policies as P
from learners.replay import read_rows, replay

FADE = 1.0  # the fade the patched e-processes use now
_OBSERVE = P.ChallengerPolicy.observe  # as shipped


def faded(fade: float, challenger_only: bool = False) -> None:
    """Patch ``EProcess.add`` and ``_add_shared``: the sums behind the bet faded by ``fade`` per pair; with
    ``challenger_only``, only while the challenger's evidence is fed (the incremental and probation tests as
    shipped)."""
    global FADE
    FADE = 1.0 if challenger_only else fade
    if challenger_only:
        original = _OBSERVE

        def observe(self: P.ChallengerPolicy, *args: Any, **kwargs: Any) -> None:
            global FADE
            FADE = fade
            try:
                original(self, *args, **kwargs)
            finally:
                FADE = 1.0

        P.ChallengerPolicy.observe = observe  # type: ignore[method-assign]

    def add(self: G.EProcess, d: float) -> None:
        fade = FADE
        w = self.n if fade == 1.0 else (1.0 - fade**self.n) / (1.0 - fade)
        mean = self.s / (w + 1)
        var = (self.s2 - self.s * mean + 0.25) / (w + 1)
        gap = self.m - mean
        lam = min(max(gap / (var + gap * gap), 0.0), G.BET_CAP / (1.0 - self.m)) if gap > 0 else 0.0
        self.log_wealth += math.log1p(lam * (self.m - d))
        self.n += 1
        self.s = fade * self.s + d
        self.s2 = fade * self.s2 + d * d

    def add_shared(tests: Any, n: float, s: float, s2: float, d: float) -> None:
        for test in tests:
            test.n, test.s, test.s2 = n, s, s2
            add(test, d)

    G.EProcess.add = add  # type: ignore[method-assign]
    G._add_shared = add_shared


def collect(preds: list[Any], record: dict[str, Any]) -> None:
    preds.append(record["prediction"])


def rows_of(name: str, n: int, seed: int) -> tuple[list[Any], list[int], str, bool]:
    try:
        examples, points, task, gradual = U.make(name, n, seed)
    except (KeyError, ValueError):
        rows, points = A.make_stream(name, n, seed)
        return (
            rows,
            points,
            ("regression" if name.startswith("friedman") else "classification"),
            "grad" in name,
        )
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "s.csv"
        U.write_csv(examples, path)
        return list(read_rows(path, "y")), points, task, gradual


def main() -> int:
    names, n, seed = sys.argv[1].split(","), int(sys.argv[2]), int(sys.argv[3])
    fades = [float(f) for f in sys.argv[4].split(",")]
    challenger_only = sys.argv[5:] == ["challenger"]
    for name in names:
        if name == "poisoning":  # the reference-set bursts of bench/accuracy.py, in this process
            for fade in fades:
                faded(fade, challenger_only)
                print(f"poisoning seed {seed} fade {fade}: {A.poisoning(n, seed)}", flush=True)
            continue
        delay = 48 if name == "elec" else U.DELAY
        rows, points, task, gradual = rows_of(name, n, seed)
        specs = {"LR": A.LearnerSpec("linear_regression" if task == "regression" else "logistic_regression")}
        specs["HT"] = A.LearnerSpec("hoeffding_tree")
        plains = {k: A.plain(rows, s, task, delay, 0)["losses"] for k, s in specs.items()}
        best = min(plains, key=lambda k: sum(plains[k]))
        b = sum(plains[best]) / len(rows)
        for fade in fades:
            faded(fade, challenger_only)
            t0 = time.process_time()
            lc = A.default_lifecycle(task, seed)
            preds: list[Any] = []
            result = replay(rows, lc, delay=delay, on_prediction=functools.partial(collect, preds))
            losses = [A._loss(task, p, y) for p, (_, _, _, y) in zip(preds, rows, strict=True)]
            g = sum(losses) / len(rows)
            tax = 100 * (g - b) if task == "classification" else 100 * (g / b - 1)
            rec = [] if gradual else A.recovery(task, losses, plains[best], points, len(rows))
            reasons = collections.Counter(p["reason"] for p in result.summary()["promotions"])
            print(
                f"{name} seed {seed} fade {fade}: served {g:.4f} best plain {best} {b:.4f} tax {tax:+.2f}"
                f"{' %' if task == 'regression' else ' pts'} recovery {rec} promotions {dict(reasons)}"
                f" cpu {time.process_time() - t0:.0f}s",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
