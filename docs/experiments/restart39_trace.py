"""Session 39 (helper restart39): trace the regression sentinel's copies on regtax_gate rows.

    PYTHONPATH=TREE python docs/experiments/restart39_trace.py --rows friedman-gra-early:0,friedman-gra:4 [--n 2000]
        [--patch module.NAME=VALUE,...]

Prints, per row: each restart / promotion (sentinel label), each copy frozen (label, warm-up), each copy's p0, q and
CUSUM peak when it is dropped or at the end, each alarm; then the row's verdict line as regtax_gate prints it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import learners.sentinel as S

sys.path.insert(0, str(Path(__file__).parent))
from regtax_gate import job  # type: ignore[import-not-found]
from short_trace import _patch  # type: ignore[import-not-found]

LOG: list[str] = []
PEAK: dict[int, float] = {}
LAST: list[Any] = [None]


def _desc(c: Any) -> str:
    t = c.test
    return (
        f"copy@{c.label} w={t.warmup} p0={t.p0:.3f} rate={t.rate:.3f} q={getattr(t, 'q', float('nan')):.3g}"
        f" peak={PEAK.get(id(c), 0.0):.2f} trending={t.trending}"
    )


def install() -> None:
    cls = S.SnapshotSentinel
    orig_observe, orig_restart, orig_promoted, orig_learned = (
        cls.observe,
        cls.restart,
        cls.promoted,
        cls.learned,
    )

    def observe(self: Any, y: Any, predict: Any, index: int) -> Any:
        out = orig_observe(self, y, predict, index)
        for c in self.copies:
            PEAK[id(c)] = max(PEAK.get(id(c), 0.0), c.test.s)
        if out:
            LOG.append(f"  idx {index} seen {self.seen}: SENTINEL ALARM {out[0].details}")
        return out

    def restart(self: Any, champion: Any) -> None:
        for c in self.copies:
            LOG.append(f"  seen {self.seen}: restart drops {_desc(c)}")
        orig_restart(self, champion)
        LOG.append(f"  seen {self.seen}: restart -> {[c.label for c in self.copies]} next {self.next_copy}")

    def promoted(self: Any, champion: Any) -> None:
        for c in self.copies:
            LOG.append(f"  seen {self.seen}: promotion drops {_desc(c)}")
        orig_promoted(self, champion)
        LOG.append(f"  seen {self.seen}: PROMOTED, next {self.next_copy}")

    def learned(self: Any, champion: Any) -> None:
        before = {id(c): c for c in self.copies}
        orig_learned(self, champion)
        after = {id(c) for c in self.copies}
        for k, c in before.items():
            if k not in after:
                LOG.append(f"  seen {self.seen}: drop {_desc(c)}")
        for c in self.copies:
            if id(c) not in before:
                LOG.append(f"  seen {self.seen}: freeze copy@{c.label} warmup {c.test.warmup}")
        LAST[0] = self

    cls.observe, cls.restart, cls.promoted, cls.learned = observe, restart, promoted, learned  # type: ignore[method-assign]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", required=True)
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--patch", default="")
    a = ap.parse_args()
    _patch(a.patch)
    install()
    for spec in a.rows.split(","):
        name, seed = spec.split(":")
        LOG.clear()
        out = job(name, a.n, int(seed))
        print(f"== {name} seed {seed} n {a.n}: drifts {out['points']}")
        print("\n".join(LOG))
        for c in LAST[0].copies if LAST[0] is not None else []:
            print(f"  end: {_desc(c)}")
        print(
            f"  alarms {out['alarms']}\n"
            f"  detection {out['detection']} recovery {out['recovery']} tax {out['tax']:.2f}"
        )


if __name__ == "__main__":
    main()
