"""Session 38 (helper wave38): the incremental policy's evidence after a drift alarm, label by label.

    PYTHONPATH=TREE python docs/experiments/wave38_trace.py STREAM:SEED [...] [--n 2000] [--from 900]
        [--patch module.NAME=VALUE,...]

In process, as ``regtax_gate.py`` (default lifecycle, delay 50). Prints, from label ``--from`` on, every
incremental judgement (outcome, pairs, log-wealth of the non-inferiority test, discordant pairs won / lost),
every restart of the evidence (sink, shadow hand-over, max_examples, reference), every release and alarm, with
the label count; then the served-vs-champion errors per 50 events.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from bench.accuracy import default_lifecycle
from bench.unseen import DELAY
from learners import policies
from learners.replay import replay

sys.path.insert(0, str(Path(__file__).parent))
from short_trace import _loss, _patch, plain_losses, stream_rows  # type: ignore[import-not-found]

LOG: list[str] = []
STATE = {"labels": 0, "from": 0}


def _say(msg: str) -> None:
    if STATE["labels"] >= STATE["from"]:
        LOG.append(f"  label {STATE['labels']:5d} {msg}")


def install() -> None:
    P = policies.IncrementalPolicy
    obs, rst, rel, dec, alm = P.observe, P.restart, P.released, P.decide, P.alarmed

    def observe(self: Any, y: Any, c: Any, s: Any, seg: Any) -> None:
        STATE["labels"] += 1
        self._w38 = getattr(self, "_w38", [0, 0])
        if c != s:
            self._w38[0 if c == y else 1] += (c == y) or (s == y)
        before, nw = id(self.evidence), id(self.evidence.not_worse)
        lw0 = self.evidence.not_worse.log_wealth
        obs(self, y, c, s, seg)
        if id(self.evidence) != before:
            _say(f"evidence restarted in observe (sunk test, lw was {lw0:.2f}; n={self._w38})")
        elif id(self.evidence.not_worse) != nw:
            _say(
                f"shadow took over the sunk test (lw was {lw0:.2f}, shadow {self.evidence.not_worse.log_wealth:.2f})"
            )

    def restart(self: Any) -> None:
        rst(self)
        self._w38 = [0, 0]

    def released(self: Any, served_n: int = policies.YOUNG_SERVED) -> None:
        rel(self, served_n)
        _say(
            f"RELEASE served_n={served_n} carried={self.carried} lw={self.evidence.not_worse.log_wealth:.2f}"
        )
        self._w38 = [0, 0]

    def decide(self: Any, index: int, **kw: Any) -> Any:
        d = dec(self, index, **kw)
        if d is not None:
            ev = self.evidence
            failed = {k: v for k, v in d.checks.items() if v not in (True, None)}
            _say(
                f"judge {d.outcome:8s} n={ev.n} lw={ev.not_worse.log_wealth:.2f}"
                f" won/lost={getattr(self, '_w38', None)} since_rel={self.since_release} checks={failed}"
            )
        return d

    def alarmed(self: Any) -> None:
        alm(self)
        _say("ALARM")

    P.observe, P.restart, P.released, P.decide, P.alarmed = observe, restart, released, decide, alarmed  # type: ignore[method-assign]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("runs", nargs="+")
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--from", dest="start", type=int, default=900)
    ap.add_argument("--patch", default="")
    args = ap.parse_args()
    _patch(args.patch)
    install()
    for run in args.runs:
        name, _, seed = run.partition(":")
        rows, points, task, _ = stream_rows(name, args.n, int(seed))
        LOG.clear()
        STATE.update(labels=0, start=0)
        STATE["from"] = args.start
        lc = default_lifecycle(task, 0)
        preds: list[Any] = []
        replay(rows, lc, delay=DELAY, on_prediction=preds.append)
        served = [_loss(task, r["prediction"], y) for r, (_, _, _, y) in zip(preds, rows, strict=True)]
        lr = plain_losses(rows, task)["LR"]
        print(f"== {run} points {points} served {sum(served) / len(rows):.4f} LR {sum(lr) / len(rows):.4f}")
        print("\n".join(LOG))
        for a in range(0, len(rows), 50):
            b = a + 50
            d = sum(served[a:b]) - sum(lr[a:b])
            print(
                f"   [{a:5d},{b:5d}) served {sum(served[a:b]) / 50:.2f} LR {sum(lr[a:b]) / 50:.2f} diff {d:+.0f}"
            )


if __name__ == "__main__":
    main()
