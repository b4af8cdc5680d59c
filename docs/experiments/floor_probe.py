"""Session 33 (helper floor33): what a carried release at ``release_every`` labels after a drift alarm would buy,
by the carried test's log-wealth at that label (the counterfactual of a shorter post-alarm floor).

    PYTHONPATH=TREE python docs/experiments/floor_probe.py elec [--delay 48] [--offset 0]
    PYTHONPATH=TREE python docs/experiments/floor_probe.py waveform-permute:0 [waveform-permute:1 ...] [--n 2000]

In process, the lifecycle ``driftline replay`` builds from default settings (``bench.accuracy.default_lifecycle``).
Each time the incremental policy, within ``policies.QUIET_LABELS`` labels of a drift alarm and with a carried
non-inferiority test, reaches ``release_every`` labels since its last release (where main waits for the carried
floor ``guard.carry_release_every``), a copy of the champion is frozen and scored on the next
``carry_release_every - release_every`` events as they arrive, against the snapshot actually served: the errors an
early release would have saved (positive) or cost (negative). Nothing is changed in the run. Grouped by the carried
test's log-wealth at that label, in units of the threshold log(1/alpha).
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import Any

from bench.accuracy import default_lifecycle, make_stream
from learners import policies
from learners.policies import IncrementalPolicy
from learners.replay import replay

sys.path.insert(0, str(Path(__file__).parent))
from short_trace import _loss, stream_rows  # type: ignore[import-not-found]

BUCKETS = (1.0, 1.25, 1.5, 2.0, 3.0)


def probe(rows: list[Any], task: str, delay: int) -> dict[float, list[float]]:
    lc = default_lifecycle(task, 0 if delay == 50 else 1)
    pol = lc._increment
    threshold = -math.log(lc.guard.alpha)
    window = lc.guard.carry_release_every - lc.release_every
    active: list[list[Any]] = []  # [frozen model, events left, saved errors, wealth ratio]
    out: dict[float, list[float]] = {b: [] for b in BUCKETS}
    waiting = IncrementalPolicy.waiting

    def spy(self: IncrementalPolicy, release_every: int, served_learned: bool) -> bool:
        if (
            self is pol
            and self.carried
            and self.since_alarm < policies.QUIET_LABELS
            and self.since_release == release_every
        ):
            active.append(
                [lc._lineage.model.copy(), window, 0.0, self.evidence.not_worse.log_wealth / threshold]
            )
        return waiting(self, release_every, served_learned)

    IncrementalPolicy.waiting = spy  # type: ignore[method-assign]

    def keep(record: dict[str, Any]) -> None:
        x, y = rows[record["index"]][2], rows[record["index"]][3]
        for a in active:
            a[2] += _loss(task, record["prediction"], y) - _loss(task, a[0].predict_one(x), y)
            a[1] -= 1
        for a in [a for a in active if a[1] <= 0]:
            active.remove(a)
            b = max((b for b in BUCKETS if a[3] >= b), default=None)
            if b is not None:
                out[b].append(a[2])

    try:
        replay(rows, lc, delay=delay, on_prediction=keep)
    finally:
        IncrementalPolicy.waiting = waiting  # type: ignore[method-assign]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("rows", nargs="+")
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--delay", type=int, default=48)
    ap.add_argument("--offset", type=int, default=0)
    args = ap.parse_args()
    for item in args.rows:
        if item == "elec":
            rows, _ = make_stream("elec", 0, 1)
            rows, task, delay = rows[args.offset :], "classification", args.delay
        else:
            name, _, seed = item.partition(":")
            rows, _, task, _ = stream_rows(name, args.n, int(seed))
            delay = 50
        out = probe(rows, task, delay)
        cells = "  ".join(
            f">={b}: {len(v)} probes, saved {sum(v):+.0f} ({sum(x > 0 for x in v)} won, {sum(x < 0 for x in v)} lost)"
            for b, v in out.items()
        )
        print(f"{item:20} n {len(rows)}  {cells}", flush=True)


if __name__ == "__main__":
    main()
