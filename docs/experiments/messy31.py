"""Messy user files for ``driftline replay`` / ``driftline produce features --file`` (session 31, outside17).

    python docs/experiments/messy31.py OUTDIR [--seed 31]

Writes one CSV or JSONL file per kind of mess (missing cells written five ways, categorical strings, booleans
spelt six ways, thousands separators, quoted numbers, constant and all-missing columns, duplicate names, a BOM
with CRLF and quoted commas/newlines, ISO timestamps and repeated ids, string labels, missing labels, 50 classes,
a regression target with outliers, a class first seen after row 5,000, labels numeric in one half and strings in
the other, FeatureEvent-shaped lines) and prints ``file label_col task`` per line. Seeded: the same seed
writes the same bytes.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import random
from pathlib import Path
from typing import Any

N = 4000


def _linear(rng: random.Random, k: int = 4) -> tuple[list[float], float]:
    """k features in [-1, 1] and a noisy linear score."""
    xs = [rng.uniform(-1, 1) for _ in range(k)]
    w = [1.5, -2.0, 1.0, 0.5, -0.7, 0.3][:k]
    return xs, sum(a * b for a, b in zip(w, xs, strict=True)) + rng.gauss(0, 0.3)


def _write_csv(
    path: Path, header: list[str], rows: list[list[Any]], *, bom: bool = False, crlf: bool = False
) -> None:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n" if crlf else "\n")
    writer.writerow(header)
    writer.writerows(rows)
    path.write_text(("\ufeff" if bom else "") + buf.getvalue(), encoding="utf-8", newline="")


def _write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    with path.open("w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(
                json.dumps(row) + "\n"
            )  # allow_nan: a NaN is written as the bare token NaN, as pandas does


def build(out: Path, seed: int) -> list[tuple[str, str, str]]:
    out.mkdir(parents=True, exist_ok=True)
    made: list[tuple[str, str, str]] = []
    missing = ["", "NA", "null", "NaN", "nan"]

    # 1. missing values five ways, binary 0/1 label
    rng = random.Random(seed)
    rows = []
    for _ in range(N):
        xs, s = _linear(rng)
        cells: list[Any] = [f"{v:.4f}" if rng.random() > 0.15 else rng.choice(missing) for v in xs]
        rows.append([*cells, int(s > 0)])
    _write_csv(out / "missing.csv", ["a", "b", "c", "d", "y"], rows)
    made.append(("missing.csv", "y", "classification"))

    # 2. categorical: 5 values that matter, 5,000 distinct that do not
    rng = random.Random(seed + 2)
    rows = []
    colours = ["red", "green", "blue", "amber", "violet"]
    effect = {"red": 1.5, "green": -1.5, "blue": 0.5, "amber": -0.5, "violet": 0.0}
    for _ in range(N):
        xs, s = _linear(rng, 2)
        c = rng.choice(colours)
        rows.append(
            [f"{xs[0]:.4f}", f"{xs[1]:.4f}", c, f"u{rng.randrange(5000):04d}", int(s + effect[c] > 0)]
        )
    _write_csv(out / "categorical.csv", ["a", "b", "colour", "token", "y"], rows)
    made.append(("categorical.csv", "y", "classification"))

    # 3. booleans spelt true/false/yes/no/0/1 (per column one spelling, and one column mixing them)
    rng = random.Random(seed + 3)
    rows = []
    spell = [("true", "false"), ("yes", "no"), ("1", "0"), ("True", "False")]
    for _ in range(N):
        bits = [rng.random() < 0.5 for _ in range(4)]
        xs, s = _linear(rng, 2)
        cells = [spell[j][0 if b else 1] for j, b in enumerate(bits)]
        mixed = rng.choice(spell)[0 if bits[0] else 1]
        score = s + 1.2 * (bits[0] - 0.5) - 1.2 * (bits[1] - 0.5) + (bits[2] - 0.5)
        rows.append([f"{xs[0]:.4f}", f"{xs[1]:.4f}", *cells, mixed, int(score > 0)])
    _write_csv(out / "booleans.csv", ["a", "b", "t_tf", "t_yn", "t_01", "t_TF", "t_mixed", "y"], rows)
    made.append(("booleans.csv", "y", "classification"))

    # 4. numbers with thousands separators (quoted, "12,345.6") and numbers as quoted strings
    rng = random.Random(seed + 4)
    rows = []
    for _ in range(N):
        xs, s = _linear(rng, 3)
        rows.append([f"{xs[0] * 50000 + 60000:,.1f}", f"{xs[1]:.4f}", f"{xs[2]:.4f}", int(s > 0)])
    buf = io.StringIO()
    writer = csv.writer(buf, quoting=csv.QUOTE_ALL, lineterminator="\n")
    writer.writerow(["income", "b", "c", "y"])
    writer.writerows(rows)
    (out / "thousands.csv").write_text(buf.getvalue(), encoding="utf-8")
    made.append(("thousands.csv", "y", "classification"))

    # 5. a constant column and an all-missing column
    rng = random.Random(seed + 5)
    rows = []
    for _ in range(N):
        xs, s = _linear(rng, 3)
        rows.append([f"{xs[0]:.4f}", f"{xs[1]:.4f}", f"{xs[2]:.4f}", 7, "", int(s > 0)])
    _write_csv(out / "constant.csv", ["a", "b", "c", "const", "empty", "y"], rows)
    made.append(("constant.csv", "y", "classification"))

    # 6. duplicated column names (should be refused, naming the column)
    rng = random.Random(seed + 6)
    rows = [[f"{v:.4f}" for v in _linear(rng, 3)[0]] + [rng.randrange(2)] for _ in range(200)]
    _write_csv(out / "dupcols.csv", ["a", "b", "a", "y"], rows)
    made.append(("dupcols.csv", "y", "classification"))

    # 7. BOM, CRLF, quoted fields with commas and newlines
    rng = random.Random(seed + 7)
    rows = []
    notes = ["fine, thanks", "line one\nline two", 'said "hi", left', "plain"]
    for _ in range(N):
        xs, s = _linear(rng, 3)
        rows.append([f"{xs[0]:.4f}", rng.choice(notes), f"{xs[1]:.4f}", f"{xs[2]:.4f}", int(s > 0)])
    _write_csv(out / "bom_crlf.csv", ["a", "note", "b", "c", "y"], rows, bom=True, crlf=True)
    made.append(("bom_crlf.csv", "y", "classification"))

    # 8. ISO timestamp column, repeated ids
    rng = random.Random(seed + 8)
    rows = []
    for i in range(N):
        xs, s = _linear(rng, 3)
        ts = f"2026-03-{1 + i // 1440 % 28:02d}T{i // 60 % 24:02d}:{i % 60:02d}:00Z"
        rows.append([f"c{i % 700}", ts, f"{xs[0]:.4f}", f"{xs[1]:.4f}", f"{xs[2]:.4f}", int(s > 0)])
    _write_csv(out / "timestamps.csv", ["id", "when", "a", "b", "c", "y"], rows)
    made.append(("timestamps.csv", "y", "classification"))

    # 8b. ISO timestamp in a column named ts (what a newcomer writes)
    rows2 = [[r[1], *r[2:]] for r in rows]
    _write_csv(out / "ts_iso.csv", ["ts", "a", "b", "c", "y"], rows2)
    made.append(("ts_iso.csv", "y", "classification"))

    # 9. yes/no labels
    rng = random.Random(seed + 9)
    rows = []
    for _ in range(N):
        xs, s = _linear(rng)
        rows.append([*(f"{v:.4f}" for v in xs), "yes" if s > 0 else "no"])
    _write_csv(out / "yesno.csv", ["a", "b", "c", "d", "churn"], rows)
    made.append(("yesno.csv", "churn", "classification"))

    # 10. cat/dog/bird labels, JSONL with numbers as strings and nulls
    rng = random.Random(seed + 10)
    jrows = []
    for i in range(N):
        xs, _ = _linear(rng)
        z1, z2 = xs[0] + xs[1], xs[2] - xs[3]
        animal = "cat" if z1 > 0.3 else ("dog" if z2 > 0 else "bird")
        rec: dict[str, Any] = {"id": f"e{i}", "a": xs[0], "b": f"{xs[1]:.4f}", "c": xs[2], "d": xs[3]}
        if rng.random() < 0.1:
            rec["c"] = None
        if rng.random() < 0.05:
            rec["a"] = math.nan
        rec["animal"] = animal
        jrows.append(rec)
    _write_jsonl(out / "animals.jsonl", jrows)
    made.append(("animals.jsonl", "animal", "classification"))

    # 11. labels with missing values (20 %, five spellings)
    rng = random.Random(seed + 11)
    rows = []
    for _ in range(N):
        xs, s = _linear(rng)
        y: Any = int(s > 0) if rng.random() > 0.2 else rng.choice(missing)
        rows.append([*(f"{v:.4f}" for v in xs), y])
    _write_csv(out / "label_missing.csv", ["a", "b", "c", "d", "y"], rows)
    made.append(("label_missing.csv", "y", "classification"))

    # 12. 50 classes (nearest of 50 prototypes in 4-d)
    rng = random.Random(seed + 12)
    protos = [[rng.uniform(-1, 1) for _ in range(4)] for _ in range(50)]
    rows = []
    for _ in range(6000):
        k = rng.randrange(50)
        xs = [p + rng.gauss(0, 0.12) for p in protos[k]]
        rows.append([*(f"{v:.4f}" for v in xs), f"class_{k:02d}"])
    _write_csv(out / "fifty.csv", ["a", "b", "c", "d", "kind"], rows)
    made.append(("fifty.csv", "kind", "classification"))

    # 13. regression target with outliers
    rng = random.Random(seed + 13)
    rows = []
    for _ in range(N):
        xs, s = _linear(rng)
        target = 10 * s + 50 + (rng.choice([-1, 1]) * rng.uniform(500, 5000) if rng.random() < 0.01 else 0)
        rows.append([*(f"{v:.4f}" for v in xs), f"{target:.3f}"])
    _write_csv(out / "outliers.csv", ["a", "b", "c", "d", "price"], rows)
    made.append(("outliers.csv", "price", "regression"))

    # 14. a class that appears only after row 5,000
    rng = random.Random(seed + 14)
    rows = []
    for i in range(8000):
        xs, s = _linear(rng)
        label = "low" if s < 0 else "high"
        if i >= 5000 and xs[3] > 0.5:
            label = "new"
        rows.append([*(f"{v:.4f}" for v in xs), label])
    _write_csv(out / "late_class.csv", ["a", "b", "c", "d", "y"], rows)
    made.append(("late_class.csv", "y", "classification"))

    # 15. label numeric 0/1 in the first half, "0"/"1" strings in the second (JSONL: the types are visible)
    rng = random.Random(seed + 15)
    jrows = []
    for i in range(N):
        xs, s = _linear(rng)
        lab: Any = int(s > 0)
        jrows.append({"a": xs[0], "b": xs[1], "c": xs[2], "d": xs[3], "y": lab if i < N // 2 else str(lab)})
    _write_jsonl(out / "mixed_label.jsonl", jrows)
    made.append(("mixed_label.jsonl", "y", "classification"))

    # 16. labels true/false booleans in JSONL and "yes"/"no" features; NaN tokens
    rng = random.Random(seed + 16)
    jrows = []
    for _ in range(N):
        xs, s = _linear(rng, 3)
        flag = rng.random() < 0.5
        jrows.append(
            {
                "a": xs[0] if rng.random() > 0.1 else None,
                "b": xs[1] if rng.random() > 0.05 else math.nan,
                "c": xs[2],
                "vip": "yes" if flag else "no",
                "y": bool(s + (0.8 if flag else -0.8) > 0),
            }
        )
    _write_jsonl(out / "bool_label.jsonl", jrows)
    made.append(("bool_label.jsonl", "y", "classification"))

    # 17. FeatureEvent-shaped lines {id, ts, features, label}, the contract's record (a label missing on some)
    rng = random.Random(seed + 17)
    jrows = []
    for i in range(N):
        xs, s = _linear(rng, 3)
        rec = {
            "id": f"ev{i}",
            "ts": 1_790_000_000_000 + 1000 * i,
            "features": {"a": xs[0], "b": xs[1], "c": xs[2]},
        }
        if rng.random() > 0.05:
            rec["label"] = int(s > 0)
        jrows.append(rec)
    _write_jsonl(out / "events.jsonl", jrows)
    made.append(("events.jsonl", "label", "classification"))
    return made


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out")
    ap.add_argument("--seed", type=int, default=31)
    args = ap.parse_args()
    for name, label, task in build(Path(args.out), args.seed):
        print(name, label, task)


if __name__ == "__main__":
    main()
