"""Session 24 (helper wavegate): where a classification stream's guard tax accrues around a drift alarm, and what the
evidence since each alarm looks like (for telling a concept change from a noisy alarm).

    PYTHONPATH=TREE python docs/experiments/wave_trace.py STREAM SEED [--n 2000] [--patch module.NAME=VALUE,...]
    PYTHONPATH=TREE python docs/experiments/wave_trace.py elec 0 [--delay 48]

Replays the stream through the lifecycle ``driftline replay`` builds from default settings (as
``docs/experiments/short_trace.py``), with plain LR and HT learning every label at the same delay. Prints:

- the tax (served errors minus the best plain learner's, in points of the whole stream) split into phases: before
  the first drift point, from it to the first alarm's label, from the alarm's label to the event the first release
  after it is served from, and the rest;
- per alarm on the served model (``IncrementalPolicy.alarmed``), over the first 25 / 50 / 100 labels after it: the
  served snapshots' error (the pairs the incremental policy sees), the champion's, and the served snapshots' error
  over the 200 labels before the alarm (``pre``); the first label at which the served error since the alarm exceeds
  ``pre`` by the effect sizes 0.1 / 0.2 / 0.3 at a one-sided z of 3 (a binomial bound, not anytime-valid: a
  measurement).
"""

from __future__ import annotations

import argparse
import importlib
import math
import tempfile
from pathlib import Path
from typing import Any

from bench.accuracy import default_lifecycle, make_stream, plain
from bench.unseen import DELAY, make, write_csv
from driftline.config import LearnerSpec
from learners.lifecycle import Release
from learners.policies import IncrementalPolicy
from learners.replay import read_rows, replay


def _patch(patch: str) -> None:
    for item in filter(None, patch.split(",")):
        key, value = item.split("=")
        module, name = key.rsplit(".", 1)
        mod = importlib.import_module(module)
        old = getattr(mod, name)
        if isinstance(old, bool):
            setattr(mod, name, value == "True")
        else:
            setattr(mod, name, None if value == "None" else type(old)(value))


def first_exceeding(errs: list[float], pre: float, effect: float, z: float = 3.0) -> int | None:
    """The first count of labels at which the mean of ``errs`` exceeds ``pre + effect`` by ``z`` standard errors
    (the variance at ``pre + effect``)."""
    p0 = min(pre + effect, 0.999)
    s = 0.0
    for k, e in enumerate(errs, 1):
        s += e
        if s / k > p0 + z * math.sqrt(p0 * (1 - p0) / k):
            return k
    return None


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("stream")
    ap.add_argument("seed", type=int)
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--delay", type=int, default=None)
    ap.add_argument("--offset", type=int, default=0)
    ap.add_argument("--patch", default="")
    args = ap.parse_args()
    _patch(args.patch)
    if args.stream == "elec":
        rows, _ = make_stream("elec", 0, 1)
        rows = rows[args.offset :]
        points: list[int] = []
        task = "classification"
        delay = 48 if args.delay is None else args.delay
    else:
        examples, points, task, _ = make(args.stream, args.n, args.seed)
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "s.csv"
            write_csv(examples, path)
            rows = list(read_rows(path, "y"))
        delay = DELAY if args.delay is None else args.delay
    lc = default_lifecycle(task, 0)
    pairs: list[tuple[int, float, float]] = []  # (label's event index, champion error, served error)
    alarms: list[int] = []
    releases: list[tuple[int, str]] = []
    at = {"i": -1}
    learn_one = lc.learn_one

    def spy(x: dict[str, Any], y: Any, **kw: Any) -> list[Any]:
        at["i"] = kw["index"]
        events = learn_one(x, y, **kw)
        releases.extend((kw["index"], e.reason) for e in events if isinstance(e, Release))
        return events

    lc.learn_one = spy  # type: ignore[method-assign]
    inc_observe, inc_alarmed = IncrementalPolicy.observe, IncrementalPolicy.alarmed

    def observe(self: Any, y: Any, champion_pred: Any, served_pred: Any, segment: Any) -> None:
        pairs.append((at["i"], float(champion_pred != y), float(served_pred != y)))
        inc_observe(self, y, champion_pred, served_pred, segment)

    def alarmed(self: Any) -> None:
        alarms.append(at["i"])
        inc_alarmed(self)

    IncrementalPolicy.observe = observe  # type: ignore[method-assign]
    IncrementalPolicy.alarmed = alarmed  # type: ignore[method-assign]
    preds: list[Any] = []
    champ_now: list[
        Any
    ] = []  # the champion's answer at the event's time: what a release at every label serves

    def on_prediction(r: dict[str, Any]) -> None:
        preds.append(r["prediction"])
        champ_now.append(lc._lineage.model.predict_one(rows[r["index"]][2]))

    replay(rows, lc, delay=delay, on_prediction=on_prediction)
    served = [float(p != y) for p, (_, _, _, y) in zip(preds, rows, strict=True)]
    champ_ev = [float(p != y) for p, (_, _, _, y) in zip(champ_now, rows, strict=True)]
    specs = {
        "LR": LearnerSpec("logistic_regression", {"multiclass": "ovr"}),
        "HT": LearnerSpec("hoeffding_tree"),
    }
    runs = {k: plain(rows, s, task, delay, 0)["losses"] for k, s in specs.items()}
    n = len(rows)
    best = min(runs, key=lambda k: sum(runs[k]))
    b = runs[best]
    print(
        f"{args.stream} seed {args.seed} n {n} delay {delay} points {points} served {sum(served) / n:.4f} "
        + " ".join(f"{k} {sum(v) / n:.4f}" for k, v in runs.items())
        + f" tax {100 * (sum(served) - sum(b)) / n:+.2f}"
        + f" (champion at event time {sum(champ_ev) / n:.4f}, tax {100 * (sum(champ_ev) - sum(b)) / n:+.2f})"
    )
    # The tax's own noise: the paired standard error of (served - best plain) over the stream, in points.
    d = [a - c for a, c in zip(served, b, strict=True)]
    mu = sum(d) / n
    se = 100 * math.sqrt(sum((x - mu) ** 2 for x in d) / (n - 1) / n)
    print(
        f"paired: served-only errors {sum(x > 0 for x in d)}, {best}-only {sum(x < 0 for x in d)}, se {se:.2f}"
    )
    inc = [i for i, r in releases if r == "incremental"]
    print(f"alarms {alarms}  releases {len(releases)} (incremental {len(inc)})")
    if n <= 10000:
        print("release labels", [i for i, _ in releases])
    if points:
        d = points[0]
        a = next((i for i in alarms if i >= d), None)
        # The first release decided after the alarm's label is served from the event at which that label arrives.
        first = next((i for i in inc if a is not None and i > a), None)
        served_from = None if first is None else first + delay
        sf = served_from if served_from is not None else n
        edges = [0, d, (a if a is not None else n) + delay, sf, sf + 250, n]
        edges = [min(max(e, 0), n) for e in edges]
        names = ["before drift", "drift->alarm label", "alarm label->1st release served", "next 250", "rest"]
        parts = []
        for name, lo, hi in zip(names, edges, edges[1:], strict=False):
            t = 100 * (sum(served[lo:hi]) - sum(b[lo:hi])) / n
            c = 100 * (sum(champ_ev[lo:hi]) - sum(b[lo:hi])) / n
            parts.append(f"{name} [{lo},{hi}) {t:+.2f} (champion {c:+.2f})")
        print("tax by phase: " + "; ".join(parts))
        print(
            f"first alarm {a} (delay {None if a is None else a - d}), first release after it {first}, "
            f"served from {served_from}"
        )
    if n <= 10000:
        by_label: dict[int, tuple[float, float]] = {p[0]: (p[1], p[2]) for p in pairs}
        for lo in range(0, n, 100):
            hi = min(lo + 100, n)
            lab = [by_label[i] for i in range(lo, hi) if i in by_label]
            k = max(len(lab), 1)
            print(
                f"  [{lo:>5},{hi:>5}) served {sum(served[lo:hi]) / (hi - lo):.2f} champion@event "
                f"{sum(champ_ev[lo:hi]) / (hi - lo):.2f} {best} {sum(b[lo:hi]) / (hi - lo):.2f} | at label time: "
                f"champion {sum(c for c, _ in lab) / k:.2f} served {sum(v for _, v in lab) / k:.2f}"
            )
    # Per alarm: the served error since it against before it, the champion's.
    by_index = {p[0]: k for k, p in enumerate(pairs)}
    for a in alarms:
        k = by_index.get(a)
        if k is None:
            continue
        before = pairs[max(0, k - 200) : k]
        pre = sum(p[2] for p in before) / max(len(before), 1)
        after = pairs[k + 1 : k + 251]
        cells = []
        for w in (25, 50, 100):
            seg = after[:w]
            if not seg:
                continue
            ev_err = sum(champ_ev[p[0]] for p in seg) / len(seg)
            cells.append(
                f"{w}: served {sum(p[2] for p in seg) / len(seg):.2f} champ {sum(p[1] for p in seg) / len(seg):.2f}"
                f" champ@event {ev_err:.2f}"
            )
        # The champion as served at each event (``champ_ev``) against what was served, over the 100 events from one
        # delay after the alarm's label (events the champion could have been serving since the alarm).
        late = [i for i in range(a + delay, min(a + delay + 100, n))]
        if late:
            cells.append(
                f"events +{delay}..+{delay + 100}: served@event {sum(served[i] for i in late) / len(late):.2f}"
                f" champ@event {sum(champ_ev[i] for i in late) / len(late):.2f}"
            )
        errs = [p[2] for p in after]
        firsts = [first_exceeding(errs, pre, e) for e in (0.1, 0.2, 0.3)]
        disc = (sum(p[1] < p[2] for p in after[:100]), sum(p[1] > p[2] for p in after[:100]))
        print(f"  alarm {a}: pre {pre:.2f}; " + "; ".join(cells) + f"; served>pre+.1/.2/.3 at {firsts}; "
              f"discordant champ-wins/loses first 100 {disc}")  # fmt: skip


if __name__ == "__main__":
    main()
