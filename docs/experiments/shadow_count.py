"""Session 32 (helper tax32): per stream and seed, how often the shadow test took over (``learners.policies.SHADOW``).

    PYTHONPATH=TREE python docs/experiments/shadow_count.py N STREAM:SEEDS[,STREAM:SEEDS...]   (SEEDS: 11-16 or 12)

Replays each stream of ``bench.unseen`` through the lifecycle ``driftline replay`` builds from default settings (as
``regtax_gate.py``, without the plain learners) and counts the incremental evidence's hand-overs (a sunk carried test
replaced by its shadow, with the label count at which it happened) and restarts. A run with no hand-over decides as
with ``SHADOW`` 0, label for label.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from bench.accuracy import default_lifecycle
from bench.unseen import DELAY
from learners import policies
from learners.replay import replay

sys.path.insert(0, str(Path(__file__).parent))
from short_trace import stream_rows  # type: ignore[import-not-found]

COUNTS: dict[str, Any] = {}
_observe = policies.IncrementalPolicy.observe


def _counted(self: policies.IncrementalPolicy, *args: Any, **kwargs: Any) -> None:
    ev = self.evidence
    test = ev.not_worse
    _observe(self, *args, **kwargs)
    if self.evidence is ev and ev.not_worse is not test:
        COUNTS["at"].append(COUNTS["labels"])
    elif self.evidence is not ev:
        COUNTS["restarts"] += 1
    COUNTS["labels"] += 1


def main() -> None:
    policies.IncrementalPolicy.observe = _counted  # type: ignore[method-assign]
    n = int(sys.argv[1])
    for item in sys.argv[2].split(","):
        name, seeds = item.split(":")
        lo, _, hi = seeds.partition("-")
        for seed in range(int(lo), int(hi or lo) + 1):
            COUNTS.update(at=[], restarts=0, labels=0)
            rows, _points, task, _gradual = stream_rows(name, n, seed)
            replay(rows, default_lifecycle(task, 0), delay=DELAY)
            print(
                f"{name:18} s{seed} n{n} hand-overs {len(COUNTS['at'])} at labels {COUNTS['at']} "
                f"restarts {COUNTS['restarts']}",
                flush=True,
            )


if __name__ == "__main__":
    main()
