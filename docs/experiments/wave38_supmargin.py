"""Session 38 (helper wave38): waveform-permute at 2,000 events (gate 1's rows) with the challenger's superiority
margin (and optionally its grace) changed, a screen only (not a gate).

    PYTHONPATH=TREE python docs/experiments/wave38_supmargin.py MARGIN [GRACE]

The lifecycle of ``regtax_gate.py`` (default settings) with ``guard.superiority_margin`` = MARGIN.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Any

from bench.unseen import verdict
from driftline.settings import Settings
from learners.lifecycle import ModelLifecycle

sys.path.insert(0, str(Path(__file__).parent))
import regtax_gate as g  # type: ignore[import-not-found]

MARGIN = float(sys.argv[1])
GRACE = int(sys.argv[2]) if len(sys.argv) > 2 else None


def lifecycle(task: str, seed: int, reference: list[Any] | None = None) -> ModelLifecycle:
    s = Settings()
    m = s.model
    kw: dict[str, Any] = {"superiority_margin": MARGIN}
    if GRACE is not None:
        kw["challenger_grace"] = GRACE
    guard = dataclasses.replace(s.guard, **kw)
    return ModelLifecycle(
        "bench", task, m.learner, m.challenger, s.drift, guard,
        reference=reference, release_every=m.release_every, seed=seed,
    )  # fmt: skip


def main() -> None:
    g.default_lifecycle = lifecycle
    total = 0.0
    for seed in range(8):
        r = g.job("waveform-permute", 2000, seed)
        total += r["tax"]
        print(
            seed, f"{r['tax']:+.2f}", verdict(r), "releases", r["promotions"], "holds", r["holds"], flush=True
        )
    print("mean", total / 8)


if __name__ == "__main__":
    main()
