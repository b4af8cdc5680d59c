"""Session 36 (helper prior36): the plain ``auto`` pool's leader rules replayed offline (issue 13, rbfdrift-fast).

    PYTHONPATH=TREE python docs/experiments/pool_select_sim.py CSV [--delay 50] [--label-col y]

The three default members (and a class prior: the most frequent label learned so far) learn every label ``delay``
events late, as in ``bench.accuracy.plain``; for every event two losses are kept per member: on its answer when the
event arrives (what serving it costs) and on its test-then-train answer just before it learns the label (what the
pool scores it by, as if the delay were 0). The members learn the same whatever the pool serves, so any leader rule
is then replayed from the two tables: main's (lowest faded test-then-train loss; it reproduces the plain pool's
accuracy to the digit), a margin (hysteresis), a paired test on the faded differences, a slower fade, scores at
arrival (``share``) and the prior floor of ``prior_floor.py`` (the prior answers when its faded loss is under the
leader's faded test-then-train loss plus the faded delay penalty, measured on the labels a learning member served).
"""

from __future__ import annotations

import argparse
import collections
import math
from typing import Any

from driftline.config import LearnerSpec
from learners.replay import read_rows
from learners.specs import Learner

FADE = 0.995
MEMBERS = ("LR", "LR2", "HT", "prior")


def tables(path: str, label: str, delay: int) -> tuple[list[list[int]], list[list[int]]]:
    rows = list(read_rows(path, label))
    specs = [
        LearnerSpec("logistic_regression"),
        LearnerSpec("logistic_regression", {"degree": 2}),
        LearnerSpec("hoeffding_tree"),
    ]
    ms = [Learner(s, "classification", 0) for s in specs]
    n = len(rows)
    arr = [[0] * n for _ in range(4)]
    ttt = [[0] * n for _ in range(4)]
    counts: collections.Counter[Any] = collections.Counter()
    pending: collections.deque[int] = collections.deque()
    for i, (_, _, x, y) in enumerate(rows):
        for k, m in enumerate(ms):
            arr[k][i] = int(m.predict_one(x) != y)
        arr[3][i] = int((counts.most_common(1)[0][0] if counts else None) != y)
        pending.append(i)
        if len(pending) > delay:
            j = pending.popleft()
            xj, yj = rows[j][2], rows[j][3]
            for k, m in enumerate(ms):
                ttt[k][j] = int(m.predict_one(xj) != yj)
                m.learn_one(xj, yj)
            ttt[3][j] = int((counts.most_common(1)[0][0] if counts else None) != yj)
            counts[yj] += 1
    return arr, ttt


def rule(arr: list[list[int]], ttt: list[list[int]], delay: int, **kw: Any) -> tuple[float, int]:
    """Accuracy and leader switches of the plain pool (three learning members) under one rule."""
    n, k3 = len(arr[0]), 3
    share, fade, margin, z = kw.get("share", 0.0), kw.get("fade", FADE), kw.get("margin", 0.0), kw.get("z")
    losses, leader, ok, sw = [0.0] * k3, 0, 0, 0
    s_d, q_d, w = [0.0] * k3, [0.0] * k3, 0.0
    for i in range(n):
        ok += 1 - arr[leader][i]
        j = i - delay
        if j < 0:
            continue
        loss = [(1 - share) * ttt[k][j] + share * arr[k][j] for k in range(k3)]
        losses = [fade * a + b for a, b in zip(losses, loss, strict=True)]
        w = fade * w + 1
        for k in range(k3):
            dd = loss[k] - loss[leader]
            s_d[k], q_d[k] = fade * s_d[k] + dd, fade * q_d[k] + dd * dd
        best = min(range(k3), key=lambda k: (losses[k], k != leader))
        if best == leader:
            continue
        if z is not None:
            m = s_d[best] / w
            take = m < 0 and -m / math.sqrt(max(q_d[best] / w - m * m, 1e-12) / w) > z
        else:
            take = losses[best] < losses[leader] - margin
        if take:
            leader, sw = best, sw + 1
            s_d, q_d, w = [0.0] * k3, [0.0] * k3, 0.0
    return ok / n, sw


def floor(
    arr: list[list[int]], ttt: list[list[int]], delay: int, pen_fade: float = FADE
) -> tuple[float, float]:
    """Accuracy and the prior's share of the events under ``prior_floor.py``'s rule (margin 0, 200 labels first)."""
    n = len(arr[0])
    losses, leader, ok, w, pen, pw, pl, nl = [0.0] * 3, 0, 0, 0.0, 0.0, 0.0, 0.0, 0
    lead_at, prior_at, use = [0] * n, [False] * n, False
    for i in range(n):
        lead_at[i], prior_at[i] = leader, use
        ok += 1 - (arr[3][i] if use else arr[leader][i])
        j = i - delay
        if j < 0:
            continue
        nl += 1
        if not prior_at[j]:
            pen, pw = pen_fade * pen + arr[lead_at[j]][j] - ttt[lead_at[j]][j], pen_fade * pw + 1
        losses = [FADE * losses[k] + ttt[k][j] for k in range(3)]
        pl, w = FADE * pl + ttt[3][j], FADE * w + 1
        leader = min(range(3), key=lambda k: (losses[k], k != leader))
        use = nl > 200 and pw > 0 and pl / w < losses[leader] / w + pen / pw
    return ok / n, sum(prior_at) / n


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("csv")
    ap.add_argument("--delay", type=int, default=50)
    ap.add_argument("--label-col", default="y")
    args = ap.parse_args()
    arr, ttt = tables(args.csv, args.label_col, args.delay)
    n = len(arr[0])
    print("members at arrival:", {m: round(1 - sum(a) / n, 4) for m, a in zip(MEMBERS, arr, strict=True)})
    print(
        "members test-then-train:",
        {
            m: round(1 - sum(a[: n - args.delay]) / (n - args.delay), 4)
            for m, a in zip(MEMBERS, ttt, strict=True)
        },
    )
    variants: dict[str, dict[str, Any]] = {"main": {}}
    variants |= {f"margin {m}": {"margin": m} for m in (1, 2, 4, 8)}
    variants |= {f"paired z {z}": {"z": z} for z in (1.0, 1.64, 2.58)}
    variants |= {f"fade {f}": {"fade": f} for f in (0.998, 0.999)}
    variants |= {f"arrival share {s}": {"share": s} for s in (0.5, 1.0)}
    for name, kw in variants.items():
        acc, sw = rule(arr, ttt, args.delay, **kw)
        print(f"{name:>20}: {acc:.4f} ({sw} switches)")
    for pf in (FADE, 0.999):
        acc, share = floor(arr, ttt, args.delay, pf)
        print(f"{'prior floor ' + str(pf):>20}: {acc:.4f} (prior answers {share:.1%})")


if __name__ == "__main__":
    main()
