"""Session 38 (helper det38): why an abrupt drift raises no alarm: what each detector saw around it, per seed.

    PYTHONPATH=TREE python docs/experiments/det38_trace.py [--n 4000] [--seeds 0-7]
        [--streams sea-abrupt,friedman-gra-early] [--window 400]

The lifecycle ``driftline replay`` builds from default settings, replayed on ``bench.unseen``'s stream at its delay
(as ``regtax_gate.py``), with the served detectors instrumented (nothing they decide is changed). Per stream, seed
and drift point D (event index; its labels arrive from D + delay):

- ``err``: the error the served error detector (ADWIN) took, mean over the ``window`` labels before D and after it
  (absolute error for regression, after the tail cap); ``d/se``: the rise in standard errors of the after-mean;
- ``loss``: the same for the loss detector's values; ``ph``: the first loss detector's Page-Hinkley statistic
  (standardised units) at its largest over the window after D, against its threshold, with the warm-up std that
  scales it (``std``) and ``z``: the loss rise in that std; ``trained``: the regression trained-scale detector's
  largest statistic after D, or where it stood (``wait N``: still settling, ``warm``: in its warm-up);
- ``cusum``: the sentinel's largest Bernoulli CUSUM over its copies after D (classification; threshold 6.91), with
  that copy's p0 and its error after D; ``copies``: frozen copies watching at D (their label);
- ``alarms``: every alarm (label index, signal) after D - lead within 2,000 events; ``dropped``: detector alarms the
  lifecycle's rules threw away after D (ADWIN grace or a fall, loss corroboration) with their label.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from statistics import mean, pstdev
from typing import Any

import learners.detectors as dets
import learners.drift as drift
import learners.sentinel as sent
from bench.accuracy import default_lifecycle
from bench.unseen import DELAY
from learners.replay import replay

sys.path.insert(0, str(Path(__file__).parent))
from short_trace import stream_rows  # type: ignore[import-not-found]

LOG: dict[str, Any] = {}


def _ph_stat(det: Any) -> float:
    d = getattr(det, "detector", None)
    if d is None or not hasattr(d, "_sum_increase"):
        return math.nan
    return float(d._sum_increase - d._min_increase)


def install(lc: Any) -> None:
    LOG.clear()
    LOG.update(err=[], loss=[], ph=[], trained=[], cusum=[], dropped=[], copies=[])
    err_update = drift.ErrorDriftMonitor.update
    loss_update = drift.LossDriftMonitor.update
    observe = sent.SnapshotSentinel.observe
    corr = dets.ScaledDetector._corroborated

    def e_update(self: Any, error: float, index: int) -> list[Any]:
        out = err_update(self, error, index)
        if self is lc._error_monitor:
            LOG["err"].append((index, float(error)))
            d = self._detector
            if getattr(d, "drift_detected", False) and not out:
                LOG["dropped"].append((index, "adwin(grace or fall)"))
        return out

    def l_update(self: Any, loss: float, index: int) -> list[Any]:
        out = loss_update(self, loss, index)
        if self is lc._loss_monitor:
            LOG["loss"].append((index, float(loss)))
            det = self._detector
            LOG["ph"].append((index, _ph_stat(det), det.std if det.detector is not None else math.nan))
            t = self._trained
            if t is None:
                LOG["trained"].append((index, "none"))
            elif self._trained_wait:
                LOG["trained"].append((index, f"wait {self._trained_wait}"))
            elif t.detector is None:
                LOG["trained"].append((index, "warm"))
            else:
                LOG["trained"].append((index, _ph_stat(t)))
        return out

    def s_observe(self: Any, y: Any, predict: Any, index: int) -> list[Any]:
        out = observe(self, y, predict, index)
        if self is lc._sentinel:
            best = max(self.copies, key=lambda c: c.test.s, default=None)
            LOG["cusum"].append(
                (
                    index,
                    best.test.s if best else math.nan,
                    best.test.p0 if best else math.nan,
                    best.label if best else -1,
                )
            )
            LOG["copies"].append((index, [(c.label, c.test.n) for c in self.copies]))
        return out

    def s_corr(self: Any) -> bool:
        ok = corr(self)
        if not ok:
            LOG["dropped"].append((-1, "loss(not corroborated)"))
        return ok

    drift.ErrorDriftMonitor.update = e_update  # type: ignore[method-assign]
    drift.LossDriftMonitor.update = l_update  # type: ignore[method-assign]
    sent.SnapshotSentinel.observe = s_observe  # type: ignore[method-assign]
    dets.ScaledDetector._corroborated = s_corr  # type: ignore[method-assign]
    LOG["restore"] = (err_update, loss_update, observe, corr)
    LOG["signals"] = []
    monitor = lc._monitor

    def l_monitor(*args: Any, **kw: Any) -> list[Any]:
        out = monitor(*args, **kw)
        for s in out:
            if s.signal in ("error", "loss"):
                tag = "sentinel" if s.details.get("test") == "frozen_snapshot" else s.detector
                tag += "/trained" if s.details.get("scale") == "trained" else ""
                tag += "/ref" if s.details.get("snapshot") == "reference" else ""
                LOG["signals"].append((s.index, f"{s.signal}:{tag}"))
        return out

    lc._monitor = l_monitor


def uninstall() -> None:
    e, lo, o, c = LOG["restore"]
    drift.ErrorDriftMonitor.update = e  # type: ignore[method-assign]
    drift.LossDriftMonitor.update = lo  # type: ignore[method-assign]
    sent.SnapshotSentinel.observe = o  # type: ignore[method-assign]
    dets.ScaledDetector._corroborated = c  # type: ignore[method-assign]


def _split(series: list[tuple[int, float]], d: int, w: int) -> tuple[list[float], list[float]]:
    before = [v for i, v in series if d - w <= i < d]
    after = [v for i, v in series if d <= i < d + w]
    return before, after


def trace(name: str, n: int, seed: int, w: int) -> list[str]:
    rows, points, task, _ = stream_rows(name, n, seed)
    lc = default_lifecycle(task, 0)
    install(lc)
    try:
        res = replay(rows, lc, delay=DELAY)
    finally:
        uninstall()
    alarms = res.summary()["alarms"]
    out = []
    for k, d in enumerate(points):
        end = points[k + 1] if k + 1 < len(points) else n
        hi = min(end, d + 2000)
        eb, ea = _split(LOG["err"], d, w)
        lb, la = _split(LOG["loss"], d, w)

        def rise(b: list[float], a: list[float]) -> str:
            if not b or not a:
                return "-"
            se = (pstdev(b) or 1e-9) / math.sqrt(len(a))
            return f"{mean(b):.3f}->{mean(a):.3f} ({(mean(a) - mean(b)) / se:+.1f}se)"

        ph_after = [(i, s, sd) for i, s, sd in LOG["ph"] if d <= i < hi and not math.isnan(s)]
        ph = max(ph_after, key=lambda t: t[1], default=None)
        ph_s = "warm/settle" if ph is None else f"{ph[1]:.1f}@{ph[0]} std {ph[2]:.3g}"
        z = "" if ph is None or not lb or not la else f" z {(mean(la) - mean(lb)) / ph[2]:+.2f}"
        tr = [v for i, v in LOG["trained"] if d <= i < hi]
        if not tr or tr[0] == "none":
            tr_s = "none"
        else:
            nums = [v for v in tr if isinstance(v, float) and not math.isnan(v)]
            tr_s = f"max {max(nums):.1f}" if nums else ""
            tr_s += f" (at D: {tr[0] if isinstance(tr[0], str) else 'armed'})"
        cus = [t for t in LOG["cusum"] if d <= t[0] < hi and not math.isnan(t[1])]
        if task == "classification":
            c = max(cus, key=lambda t: t[1], default=None)
            cop = next((v for i, v in LOG["copies"] if i >= d), [])
            cus_s = "no copy" if c is None else f"{c[1]:.2f}@{c[0]} p0 {c[2]:.3f} copy@{c[3]}"
            cus_s += f" copies at D {cop}"
        else:
            cus_s = "-"
        al = [a for a in LOG["signals"] if d <= a[0] < hi]
        out.append(
            f"{name:19s} s{seed} D {d:5d} | err {rise(eb, ea)} | loss {rise(lb, la)} | ph {ph_s}{z} "
            f"| trained {tr_s} | cusum {cus_s} | alarms {al} | all alarms {alarms}"
        )
    drops = [x for x in LOG["dropped"] if x[0] >= points[0] or x[0] == -1]
    if drops:
        out.append(f"{'':19s}    dropped {drops[:8]}")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--n", type=int, default=4000)
    ap.add_argument("--seeds", default="0-7")
    ap.add_argument("--streams", default="sea-abrupt,friedman-gra-early")
    ap.add_argument("--window", type=int, default=400)
    a = ap.parse_args()
    lo, _, hi = a.seeds.partition("-")
    seeds = range(int(lo), int(hi or lo) + 1) if "," not in a.seeds else map(int, a.seeds.split(","))
    for s in list(seeds):
        for name in a.streams.split(","):
            for line in trace(name, a.n, s, a.window):
                print(line, flush=True)


if __name__ == "__main__":
    main()
