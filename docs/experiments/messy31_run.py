"""Replay every messy31 file with the defaults and compare with plain River learners (session 31, outside17).

    python docs/experiments/messy31_run.py DIR [--delay 50] [--only NAME ...]

DIR holds the files ``messy31.py DIR`` wrote. Per file: ``driftline replay --file F --label-col C --delay D --json``
(exit code, a traceback or not, the last stderr line, NaN in the JSON or not, accuracy or MAE) and plain River
learners learning every label D events late on the same rows as replay reads them (``learners.replay.read_rows``):
numbers scaled (``StandardScaler``), strings one-hot (``OneHotEncoder``), booleans 0/1, missing values dropped;
``LogisticRegression`` (one-vs-rest when more than two classes) and a Hoeffding tree; for regression linear
regression and a Hoeffding tree regressor. Prints one markdown row per file.
"""

from __future__ import annotations

import argparse
import collections
import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

from river import compose, linear_model, multiclass, preprocessing, tree

from learners.replay import read_rows


def _features(x: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in x.items():
        if v is None:
            continue
        if isinstance(v, bool):
            out[k] = float(v)
        elif isinstance(v, (int, float)):
            if math.isfinite(v):
                out[k] = float(v)
        elif isinstance(v, str):
            out[k] = v
    return out


def _prep() -> Any:
    return compose.TransformerUnion(
        compose.SelectType(float) | preprocessing.StandardScaler(),
        compose.SelectType(str) | preprocessing.OneHotEncoder(),
    )


def plain(path: Path, label: str, task: str, delay: int) -> dict[str, float]:
    if task == "regression":
        models = {
            "LinReg": _prep() | linear_model.LinearRegression(),
            "HTR": _prep() | tree.HoeffdingTreeRegressor(),
        }
    else:
        models = {
            "LR": _prep() | multiclass.OneVsRestClassifier(linear_model.LogisticRegression()),
            "HT": _prep() | tree.HoeffdingTreeClassifier(),
        }
    score = dict.fromkeys(models, 0.0)
    labelled = 0
    pending: collections.deque[tuple[dict[str, Any], Any, dict[str, Any]]] = collections.deque()
    for _, _, x, y in read_rows(path, label):
        xf = _features(x)
        preds = {name: m.predict_one(xf) for name, m in models.items()}
        pending.append((xf, y, preds))
        if len(pending) > delay:
            xo, yo, po = pending.popleft()
            if yo is not None:
                labelled += 1
                for name, m in models.items():
                    if task == "regression":
                        score[name] += abs((po[name] or 0.0) - float(yo))
                    else:
                        score[name] += po[name] == yo
                    m.learn_one(xo, float(yo) if task == "regression" else yo)
    # replay scores every labelled event, the last `delay` too (their labels come at the end)
    for _, yo, po in pending:
        if yo is not None:
            labelled += 1
            for name in models:
                score[name] += abs((po[name] or 0.0) - float(yo)) if task == "regression" else po[name] == yo
    return {name: s / labelled for name, s in score.items()} if labelled else {}


def replay(path: Path, label: str, delay: int, report: Path | None) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "streams.cli", "replay", "--file", str(path), "--label-col", label]
    cmd += ["--delay", str(delay), "--json"]
    if report:
        cmd += ["--report", str(report)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    err = proc.stderr.strip().splitlines()
    out: dict[str, Any] = {
        "rc": proc.returncode,
        "traceback": "Traceback" in proc.stderr,
        "stderr": err[-1] if err else "",
    }
    if proc.returncode == 0:
        line = proc.stdout.strip().splitlines()[-1]
        out["nan_in_json"] = "NaN" in line or "Infinity" in line
        out["summary"] = json.loads(line)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("--delay", type=int, default=50)
    ap.add_argument("--only", nargs="*")
    ap.add_argument("--report", action="store_true", help="also write --report DIR/<file>.report")
    args = ap.parse_args()
    root = Path(args.dir)
    print("| file | replay rc | outcome | served | plain (ours) | replay's plain |")
    print("|---|---|---|---|---|---|")
    for line in (root / "index.txt").read_text().splitlines():
        name, label, _task = line.split()
        if args.only and name not in args.only:
            continue
        path = root / name
        r = replay(path, label, args.delay, root / f"{name}.report" if args.report else None)
        if r["rc"] != 0:
            outcome = ("TRACEBACK " if r["traceback"] else "") + r["stderr"][:160]
            print(f"| {name} | {r['rc']} | {outcome} | - | - | - |", flush=True)
            continue
        s = r["summary"]
        metric = "accuracy" if "accuracy" in s else "mae"
        try:
            ours = plain(path, label, s["task"], args.delay)
            ours_text = ", ".join(f"{k} {v:.4f}" for k, v in ours.items())
        except Exception as exc:  # a plain loop that cannot run is a finding too
            ours_text = f"plain failed: {type(exc).__name__}: {exc}"[:120]
        outcome = f"ok task={s['task']} n={s['n']} nan={r['nan_in_json']} notes={r['stderr'][:80]!r}"
        rp = s.get(f"plain_{metric}")
        print(
            f"| {name} | 0 | {outcome} | {metric} {s[metric]:.4f} | {ours_text} | "
            f"{'-' if rp is None else f'{rp:.4f}'} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
