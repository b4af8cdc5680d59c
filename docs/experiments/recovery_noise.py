"""Session 26 (helper rec13): how much of a ``bench.unseen`` recovery verdict is noise. Per abrupt drift, every
``RECOVERY_STEP``-th window of ``RECOVERY_WINDOW`` events after it (as ``bench.accuracy.recovery`` slides it): the
served loss minus the best plain learner's over the window, the bound (1 point of error, 2 % of MAE) and the paired
standard error of that sum (sqrt of the sum of squared per-event differences about their mean: the noise a window sum
carries when the two models' answers differ event by event).

    PYTHONPATH=TREE python docs/experiments/recovery_noise.py STREAM SEED [--n 10000] [--span 800] [--patch ...]

In process, as ``short_trace.py``: the stream written as CSV and read back as the CLI reads it, replayed through the
lifecycle ``driftline replay`` builds from default settings (delay 50); the plain learners as ``bench.unseen``'s.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import Any

from bench.accuracy import RECOVERY_STEP, RECOVERY_WINDOW, default_lifecycle
from bench.unseen import DELAY
from learners.replay import replay

sys.path.insert(0, str(Path(__file__).parent))
from short_trace import _loss, _patch, plain_losses, stream_rows  # type: ignore[import-not-found]


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("stream")
    ap.add_argument("seed", type=int)
    ap.add_argument("--n", type=int, default=10000)
    ap.add_argument("--span", type=int, default=800, help="window starts printed after each drift")
    ap.add_argument("--step", type=int, default=2 * RECOVERY_STEP)
    ap.add_argument("--patch", default="")
    args = ap.parse_args()
    _patch(args.patch)
    rows, points, task, _ = stream_rows(args.stream, args.n, args.seed)
    preds: list[Any] = []
    replay(
        rows, default_lifecycle(task, 0), delay=DELAY, on_prediction=lambda r: preds.append(r["prediction"])
    )
    served = [_loss(task, p, y) for p, (_, _, _, y) in zip(preds, rows, strict=True)]
    runs = plain_losses(rows, task)
    best_name = min(runs, key=lambda k: sum(runs[k]))
    best = runs[best_name]
    w = RECOVERY_WINDOW
    for k, p in enumerate(points):
        end = min(points[k + 1] if k + 1 < len(points) else len(rows), len(rows)) - w
        print(f"{args.stream} seed {args.seed} drift {p} best plain {best_name}")
        for t in range(p, min(p + args.span, end) + 1, args.step):
            d = [served[i] - best[i] for i in range(t, t + w)]
            diff = sum(d)
            se = math.sqrt(max(sum(x * x for x in d) - diff * diff / w, 0.0))
            lb = sum(best[t : t + w])
            bound = 0.01 * w if task == "classification" else 0.02 * lb
            print(
                f"  +{t - p:5d}: served - best {diff:+10.1f}  bound {bound:9.1f}  paired SE {se:9.1f}  "
                f"{'within' if diff <= bound else 'over'}"
            )


if __name__ == "__main__":
    main()
