"""Session 34 (helper lag34): how often the lead as served opens the short post-alarm floor (``SERVED_LEAD``).

    PYTHONPATH=TREE python docs/experiments/served_lead.py [--n 2000] [--lead 10] [--margin 0.0]
        STREAM:SEED ... | elec:DELAY[:OFFSET]

In process (the lifecycle ``driftline replay`` builds from default settings; the unseen streams at delay 50 as
``regtax_gate.py``, elec as ``coldstart_gates.py``). Per run: served accuracy, incremental releases, those made at the
short floor (``ModelLifecycle.lead_releases``), rollbacks, the measured label delay, and the as-served lead test at
the end (pairs since the latest alarm and their log-wealth).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from bench.accuracy import default_lifecycle, make_stream
from bench.unseen import DELAY
from learners import policies
from learners.replay import replay

sys.path.insert(0, str(Path(__file__).parent))
from short_trace import stream_rows  # type: ignore[import-not-found]


def run(spec: str, n: int) -> dict[str, Any]:
    name, _, rest = spec.partition(":")
    if name == "elec":
        delay_s, _, offset = rest.partition(":")
        rows = make_stream("elec", 0, 1)[0][int(offset or 0) :]
        task, delay = "classification", int(delay_s or 48)
    else:
        rows, _, task, _ = stream_rows(name, n, int(rest or 0))
        delay = DELAY
    lc = default_lifecycle(task, 0)
    res = replay(rows, lc, delay=delay)
    s = res.summary()
    lead = lc._increment.lead
    return {
        "run": spec,
        "accuracy": round(s.get("accuracy", 0.0), 4),
        "incremental": sum(1 for p in s["promotions"] if p.get("reason") == "incremental"),
        "short": lc.lead_releases,
        "rollbacks": len(s["rollbacks"]),
        "delay": lc._label_delay,
        "lead_pairs": None if lead is None else lead.n,
        "lead_log_wealth": None if lead is None else round(lead.better.log_wealth, 2),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("runs", nargs="+")
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--lead", type=int, default=10)
    ap.add_argument("--margin", type=float, default=0.0)
    args = ap.parse_args()
    policies.SERVED_LEAD, policies.SERVED_MARGIN = args.lead, args.margin
    for spec in args.runs:
        print(run(spec, args.n), flush=True)


if __name__ == "__main__":
    main()
