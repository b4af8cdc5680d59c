"""Two ``bench.unseen --json`` outputs side by side, row by row (session 15).

    python docs/experiments/unseen_compare.py BASE.out BRANCH.out [BASE2.out BRANCH2.out ...]

Each file is the stdout of ``python -m bench.unseen ... --json`` (its last line is the JSON). Prints one markdown
row per stream present in both: drifts detected, detection delays, false alarms, MAE or accuracy, the guard tax
and the verdict, base -> branch, then the totals (missed abrupt drifts, false alarms, failing verdicts).
"""

from __future__ import annotations

import json
import sys
from typing import Any

from bench.unseen import verdict


def _load(path: str) -> dict[str, dict[str, Any]]:
    with open(path) as fh:
        last = [line for line in fh if line.startswith("[")][-1]
    return {r["stream"]: r for r in json.loads(last)}


def _cells(r: dict[str, Any]) -> tuple[str, str, str, str, str]:
    d = r["detection"]
    value = f"{r['guarded']:.3f}" if r["task"] == "regression" else f"{1 - r['guarded']:.4f}"
    unit = " %" if r["task"] == "regression" else ""
    delays = ",".join(str(x) for x in d["delays"]) or "-"
    return f"{d['detected']}/{len(r['points'])}", delays, str(d["false"]), value, f"{r['tax']:+.2f}{unit}"


def main(paths: list[str]) -> None:
    print("| file, stream | detected | delays | false | MAE / accuracy | tax | verdict |")
    print("|---|---|---|---|---|---|---|")
    missed = [0, 0]
    false = [0, 0]
    failing = [0, 0]
    for a_path, b_path in zip(paths[::2], paths[1::2], strict=True):
        a, b = _load(a_path), _load(b_path)
        for name in a:
            if name not in b:
                continue
            ra, rb = a[name], b[name]
            ca, cb = _cells(ra), _cells(rb)
            va, vb = verdict(ra), verdict(rb)
            for i, r in enumerate((ra, rb)):
                if not r["gradual"]:
                    missed[i] += len(r["points"]) - r["detection"]["detected"]
                false[i] += r["detection"]["false"]
                failing[i] += verdict(r) != "ok"
            cells = [f"{x} -> {y}" if x != y else x for x, y in zip(ca, cb, strict=True)]
            v = f"{va} -> {vb}" if va != vb else va
            print(f"| {b_path.rsplit('/', 1)[-1]}, {name} | {' | '.join(cells)} | {v} |")
    print(
        f"\nmissed abrupt drifts {missed[0]} -> {missed[1]}; false alarms {false[0]} -> {false[1]}; "
        f"failing verdicts {failing[0]} -> {failing[1]}"
    )


if __name__ == "__main__":
    main(sys.argv[1:])
