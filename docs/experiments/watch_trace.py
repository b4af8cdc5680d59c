"""Session 19: which detector alarms where, and the rollbacks, with the detectors on the served snapshot or on the
reference snapshot (``learners.lifecycle.WATCH_LABELS``), for a suite stream or elec.

    PYTHONPATH=TREE python docs/experiments/watch_trace.py STREAM SEED [--n 4000] [--delay 50]
        [--patch learners.policies.QUIET_LABELS=0]  (quiet stretches off; 2,000, on, is the default since session 23)

``STREAM`` is a name of ``bench.accuracy.STREAMS`` (``elec`` reads elec.csv whole; use ``--delay 48``). The lifecycle
is ``bench.accuracy.default_lifecycle`` (what ``driftline replay`` builds from defaults), replayed in process.
Prints one line per error/loss/sentinel alarm (index, detector, signal, details), the incremental releases per 250
events, the other promotions and the rollbacks. BENCHMARKS-accuracy.md, "Session 19: detectors on a reference copy".
"""

from __future__ import annotations

import argparse
import collections
import importlib
from typing import Any

from bench.accuracy import STREAMS, default_lifecycle, make_stream
from learners import lifecycle as lifecycle_module
from learners.replay import replay


def _patch(patch: str) -> None:
    """``module.NAME=VALUE,...``: module constants (a variant, measured in process)."""
    for item in filter(None, patch.split(",")):
        key, value = item.split("=")
        module, name = key.rsplit(".", 1)
        setattr(
            importlib.import_module(module), name, type(getattr(importlib.import_module(module), name))(value)
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("stream", choices=sorted(STREAMS))
    ap.add_argument("seed", type=int)
    ap.add_argument("--n", type=int, default=4000)
    ap.add_argument("--delay", type=int, default=50)
    ap.add_argument("--patch", default="")
    args = ap.parse_args()
    _patch(args.patch)
    rows, points = make_stream(args.stream, args.n, args.seed)
    lc = default_lifecycle(STREAMS[args.stream], args.seed)
    monitor = lc._monitor

    def logged(*a: Any, **k: Any) -> list[Any]:
        out = monitor(*a, **k)
        for e in out:
            if not e.signal.startswith("feature"):
                print("alarm", e.index, e.detector, e.signal, e.details)
        return out

    lc._monitor = logged  # type: ignore[method-assign]
    summary = replay(rows, lc, delay=args.delay).summary()
    print("drift points", points, "score", summary.get("accuracy", summary.get("mae")))
    print("watch labels", lifecycle_module.WATCH_LABELS, "(in effect:", lc._watch_labels(), ")")
    incremental = collections.Counter(
        p["index"] // 250 * 250 for p in summary["promotions"] if p["reason"] == "incremental"
    )
    print("incremental releases per 250 events:", dict(sorted(incremental.items())))
    for p in summary["promotions"]:
        if p["reason"] != "incremental":
            print("promotion", p)
    for r in summary["rollbacks"]:
        print("rollback", r)
    print("rollbacks", len(summary["rollbacks"]), "alarms", len(summary["alarms"]))
    # Reference alarms not raised (session 20): refused by the served snapshot's errors.
    print("refused", lc.refused_alarms)


if __name__ == "__main__":
    main()
