"""Where the release lag comes from: the incremental policy's evidence label by label on one CSV stream.

    PYTHONPATH=. python docs/experiments/release_lag.py FILE.csv TASK DELAY [BIN] [FROM] [TO]
    PYTHONPATH=. python docs/experiments/release_lag.py /tmp/stall-fresh/csv/np_stationary_s0.csv classification 50

In process, the lifecycle ``driftline replay`` builds from default settings (``bench.accuracy.default_lifecycle``,
seed 0). Per BIN labels (default 500): incremental releases, the longest gap between two releases, the champion's
and the served snapshot's loss on the same labels (what ``IncrementalPolicy.observe`` is given), the share of pairs
where they differ, the non-inferiority test's log-wealth (mean and at the bin's end), and, on the events that
arrived in the bin, the champion's and the served model's loss as each event arrives (their difference is the
release lag: the champion learned every label the served model's lineage could have, at the same delay). At the
end: the gaps between incremental releases (median, 90th percentile, max).

``RELEASE_LAG_PATCH='{"COLD_START": 500}'`` sets module constants of ``learners.policies`` or ``learners.guard``
for a variant; ``NI_BET_CAP`` caps the champion's non-inferiority bets alone. BENCHMARKS-accuracy.md, session 17.
"""

from __future__ import annotations

import itertools
import statistics
import sys
from typing import Any

from bench.accuracy import default_lifecycle
from learners.replay import read_rows, replay


def _loss(task: str, y: Any, pred: Any) -> float:
    if task == "classification":
        return 0.0 if pred == y else 1.0
    try:
        return abs(float(pred) - float(y))
    except (TypeError, ValueError):
        return 0.0


def _patch() -> None:
    """``RELEASE_LAG_PATCH='{"COLD_START": 500}'``: module constants of learners.policies / learners.guard."""
    import json
    import os

    import learners.guard
    import learners.policies

    for k, v in json.loads(os.environ.get("RELEASE_LAG_PATCH", "{}")).items():
        if k == "NI_BET_CAP":
            _ni_cap(float(v))
            continue
        mod = learners.policies if hasattr(learners.policies, k) else learners.guard
        setattr(mod, k, v)


def _ni_cap(cap: float) -> None:
    """The champion's non-inferiority e-process (``PairedEvidence.not_worse``) bets at most ``cap`` of the safe bet
    instead of ``BET_CAP``; the challenger's, probation's and the hold's tests keep ``BET_CAP``."""
    import math

    import learners.guard as G

    class NonInferiority(G.EProcess):
        __slots__ = ()

        def add(self, d: float) -> None:  # EProcess.add with its own cap
            mean = self.s / (self.n + 1)
            var = (self.s2 - self.s * mean + 0.25) / (self.n + 1)
            gap = self.m - mean
            lam = min(max(gap / (var + gap * gap), 0.0), cap / (1.0 - self.m)) if gap > 0 else 0.0
            self.log_wealth += math.log1p(lam * (self.m - d))
            self.n += 1
            self.s += d
            self.s2 += d * d

    def shared(tests: Any, n: int, s: float, s2: float, d: float) -> None:
        for test in tests:  # the same updates as _add_shared, one test at a time
            test.add(d)

    init = G.PairedEvidence.__init__

    def patched(self: Any, task: str, config: Any = None) -> None:
        init(self, task, config)
        self.not_worse = NonInferiority(self.not_worse.m)

    G._add_shared = shared  # type: ignore[assignment]
    G.PairedEvidence.__init__ = patched  # type: ignore[method-assign]


def main(path: str, task: str, delay: int, width: int = 500, lo: int = 0, hi: int = 10**9) -> None:
    _patch()
    rows = list(read_rows(path, "y"))
    if task == "regression":
        rows = [(r, t, x, float(y)) for r, t, x, y in rows]
    else:
        rows = [(r, t, x, int(y)) for r, t, x, y in rows]
    lc = default_lifecycle(task, 0)
    inc = lc._increment
    observe = inc.observe
    per: dict[int, list[float]] = {}
    state = {"index": 0}
    wealth_end: dict[int, float] = {}

    def spy(y: Any, champion_pred: Any, served_pred: Any, segment: Any) -> None:
        lc_, ls_ = _loss(task, y, champion_pred), _loss(task, y, served_pred)
        observe(y, champion_pred, served_pred, segment)
        b = state["index"] // width
        acc = per.setdefault(b, [0, 0.0, 0.0, 0, 0.0, 0, 0])
        acc[0] += 1
        acc[1] += lc_
        acc[2] += ls_
        acc[3] += champion_pred != served_pred if task == "classification" else lc_ != ls_
        acc[4] += inc.evidence.not_worse.log_wealth
        wealth_end[b] = inc.evidence.not_worse.log_wealth

    inc.observe = spy  # type: ignore[method-assign]
    learn_one = lc.learn_one
    releases: list[int] = []
    other: list[tuple[int, str]] = []

    def learn(x: dict[str, Any], y: Any, **kw: Any) -> list[Any]:
        state["index"] = kw["index"]
        events = learn_one(x, y, **kw)
        for e in events:
            reason = getattr(e, "reason", None)
            if type(e).__name__ == "Release":
                if reason == "incremental":
                    releases.append(kw["index"])
                else:
                    other.append((kw["index"], str(reason)))
        return events

    lc.learn_one = learn  # type: ignore[method-assign]
    arrival = {"loss": 0.0}
    arr_bin: dict[int, list[float]] = {}

    def feed() -> Any:
        from learners.features import clean_features

        # The champion as the event arrives (the served model predicts it next).
        for i, row in enumerate(rows):
            xc = clean_features(row[2])
            a = _loss(task, row[3], lc.champion.predict_one(xc, cleaned=True))
            arrival["loss"] += a
            acc = arr_bin.setdefault(i // width, [0, 0.0, 0.0])
            acc[0] += 1
            acc[1] += a
            acc[2] += _loss(task, row[3], lc.served_model.predict_one(xc, cleaned=True))
            yield row

    res = replay(feed(), lc, delay=delay)
    served_loss = (1 - res.correct / res.n) if task == "classification" else res.abs_error / res.n
    print(
        f"{path} delay {delay}: served loss {served_loss:.4f}, the champion on arrival {arrival['loss'] / res.n:.4f}"
        f" (the release lag {served_loss - arrival['loss'] / res.n:+.4f}), {len(releases)} incremental releases,"
        f" other {other}"
    )
    print("   bin  rel  maxgap  champ   served  diff%  meanlogW  endlogW | on arrival: champ  served  lag")
    for b in sorted(per):
        if not (lo <= b * width < hi):
            continue
        n, c, s, dis, w, *_ = per[b]
        an = arr_bin[b]
        inb = [r for r in releases if b * width <= r < (b + 1) * width]
        prev = [r for r in releases if r < b * width][-1:] + inb
        nxt = [r for r in releases if r >= (b + 1) * width][:1]
        edges = prev + nxt
        gaps = [q - p for p, q in itertools.pairwise(edges)]
        print(
            f"{b * width:>6} {len(inb):>4} {max(gaps, default=0):>7} {c / n:.4f} {s / n:.4f} {100 * dis / n:5.1f}"
            f" {w / n:9.2f} {wealth_end[b]:8.2f} | {an[1] / an[0]:.4f} {an[2] / an[0]:.4f}"
            f" {(an[2] - an[1]) / an[0]:+.4f}"
        )
    gaps = [q - p for p, q in itertools.pairwise(releases)]
    tot = [sum(v[i] for v in per.values()) for i in range(3)]
    if gaps:
        q = statistics.quantiles(gaps, n=10)
        print(f"gaps: median {statistics.median(gaps)}, p90 {q[-1]:.0f}, max {max(gaps)}")
    print(f"champion {tot[1] / tot[0]:.4f} vs served snapshot {tot[2] / tot[0]:.4f} on the same labels")


if __name__ == "__main__":
    a = sys.argv[1:]
    main(a[0], a[1], int(a[2]), *(int(v) for v in a[3:]))
