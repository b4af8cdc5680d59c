"""Experiment (BENCHMARKS-accuracy.md, "A lever measured and not taken"): carry the incremental policy's
non-inferiority e-process across incremental releases, capped at the threshold + log 2.

    PYTHONPATH=. python docs/experiments/carry_release_evidence.py base|carry

Superseded (session 7): the carry is built in (``guard.carry_release_every``, 50 labels apart). To reproduce the
session 6 table, run it with ``carry_release_every: 0`` and ``superiority_margin: 0`` in the guard defaults.
"""

from __future__ import annotations

import json
import math
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from typing import Any

MODE = sys.argv[1] if len(sys.argv) > 1 else "base"
CUSHION = math.log(2)


def patch() -> None:
    if MODE == "base":
        return
    from learners import policies

    decide_before = policies.IncrementalPolicy.decide

    def decide(self: Any, index: int, **kw: Any) -> Any:
        decision = decide_before(self, index, **kw)
        self._carry = decision is not None and decision.outcome == "promote" and kw["served_learned"]
        return decision

    def released(self: Any) -> None:
        carry, kept = getattr(self, "_carry", False), self.evidence.not_worse
        self.since_release = 0
        self.restart()
        if carry:
            kept.log_wealth = min(kept.log_wealth, -math.log(self.guard.alpha) + CUSHION)
            self.evidence.not_worse = kept
        self._carry = False

    policies.IncrementalPolicy.decide = decide  # type: ignore[method-assign]
    policies.IncrementalPolicy.released = released  # type: ignore[method-assign]


def job(args: tuple[str, str, int, int]) -> tuple[str, int, dict[str, Any]]:
    patch()
    kind, name, seed, n = args
    if kind == "acc":
        from bench.accuracy import stream_job

        r = stream_job(name, n, seed)
        return (
            name,
            seed,
            {k: v for k, v in r.items() if not isinstance(v, (list, dict)) or k == "promotions"},
        )
    if kind == "unseen":
        from bench import unseen
        from bench.accuracy import default_lifecycle
        from learners.replay import replay

        rows, _, task, _ = unseen.make(name, n, seed)
        preds: list[Any] = []
        lifecycle = default_lifecycle(task, seed)
        res = replay(
            [(str(i), None, x, y) for i, (x, y) in enumerate(rows)],
            lifecycle,
            delay=50,
            on_prediction=lambda r: preds.append(r["prediction"]),
        )
        acc = sum(p == y for p, (_, y) in zip(preds, rows, strict=True)) / len(rows)
        summary = res.summary()
        return name, seed, {"served": round(acc, 4), "releases": len(summary["promotions"])}
    from bench.accuracy import poisoning

    return name, seed, poisoning(n, seed)


JOBS = [
    ("acc", "elec", 1, 20000),
    ("unseen", "waveform-permute", 0, 8000),
    ("unseen", "waveform-permute", 100, 8000),
    ("acc", "hyperplane-abrupt", 1, 20000),
    ("acc", "sea-abrupt", 1, 20000),
    ("acc", "led-abrupt", 1, 20000),
    ("acc", "agrawal-abrupt", 1, 20000),
    ("acc", "friedman-lea", 1, 20000),
    ("poison", "poison", 1, 12000),
]

if __name__ == "__main__":
    start = time.monotonic()
    with ProcessPoolExecutor(2) as ex:
        for name, seed, result in ex.map(job, JOBS):
            print(MODE, name, seed, json.dumps(result, default=str), flush=True)
    print(f"# {time.monotonic() - start:.0f} s", file=sys.stderr)
