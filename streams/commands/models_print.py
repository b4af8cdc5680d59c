"""The text forms of ``driftline models list``: every model in one table, or one model's releases.

What the scorers serve is shown from their own report (``streams.serving``), not assumed from the newest release:
a signed release they could not load is marked REFUSED and the version they still serve is named. Runs of records
that failed verification (a flood of forged releases) are one line each, with their count and offsets; ``--json``
still prints every record.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from typing import Any

__all__ = ["print_models", "print_releases", "when"]


def when(ms: Any) -> str:
    try:
        return datetime.fromtimestamp(int(ms) / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")
    except (TypeError, ValueError, OverflowError, OSError):
        return "-"


def refused_text(row: dict[str, Any]) -> str:
    """``REFUSED by 2 scorer(s) (load)`` for a release the scorers refused, else ``""``."""
    refused = row.get("refused_by_scorers") or []
    if not refused:
        return ""
    n = max(int(r["scorers"]) for r in refused)
    return f"REFUSED by {n} scorer(s) ({', '.join(sorted({str(r['reason']) for r in refused}))})"


def not_served_note(rows: list[dict[str, Any]]) -> str | None:
    """When the current release (the newest verified) is refused by the scorers and they serve another one: one
    line saying so, why, and what to do; else None."""
    current = next((r for r in rows if r.get("current")), None)
    if current is None or not current.get("refused_by_scorers") or current.get("served_by_scorers"):
        return None
    served = [r for r in rows if r.get("served_by_scorers")]
    first = current["refused_by_scorers"][0]
    text = (
        f"{current['model']}: v{current['version']} is the newest release, but NOT SERVED: "
        f"{refused_text(current)}: {str(first['message'])[:200]}"
    )
    if served:
        v = served[0]["version"]
        text += (
            f"; the scorers serve v{v} (`driftline models promote {v} --model {current['model']}` releases it "
            "again as a new version)"
        )
    return text


def _current_cell(row: dict[str, Any]) -> str:
    cells = ["*"] if row["current"] else []
    refused = refused_text(row)
    if refused:
        cells.append(refused)
    n = row.get("served_by_scorers")
    if n:
        cells.append(f"served by {n} scorer(s)")
    return " ".join(cells)


def print_models(rows: list[dict[str, Any]]) -> None:
    current = [r for r in rows if r["current"]]
    print(
        f"{'model':<24}  {'version':>7}  {'n_learned':>9}  {'accuracy':>8}  {'owner':<24}  {'part':>4}  {'lag':>6}"
    )
    for r in sorted(current, key=lambda r: str(r["model"])):
        acc = r["metrics"].get("rolling_accuracy", r["metrics"].get("accuracy"))
        print(
            f"{r['model']!s:<24}  {r['version']:>7}  {r['trainer_n_learned'] or r['n_learned']!s:>9}  "
            f"{'-' if acc is None else f'{acc:.4f}':>8}  {r['owner'] or '-'!s:<24}  {r['partition']!s:>4}  "
            f"{'-' if r['lag'] is None else r['lag']!s:>6}"
        )
    for name in sorted({str(r["model"]) for r in rows}):
        note = not_served_note([r for r in rows if str(r["model"]) == name])
        if note:
            print(note)
    forged = [r for r in rows if r["verified"] is False]
    if forged:
        print(
            f"{len(forged)} UNVERIFIED release record(s) ignored; `driftline models list --model NAME` names them"
        )


def print_releases(rows: list[dict[str, Any]]) -> None:
    print(
        f"{'version':>7}  {'parent':>6}  {'reason':<11}  {'created (UTC)':<19}  "
        f"{'n_learned':>9}  {'accuracy':>8}  current"
    )
    i = 0
    while i < len(rows):
        r = rows[i]
        if r["verified"] is False:
            run = [r]
            while i + len(run) < len(rows) and rows[i + len(run)]["verified"] is False:
                run.append(rows[i + len(run)])
            print(_unverified_line(run))
            i += len(run)
            continue
        acc = r["metrics"].get("rolling_accuracy", r["metrics"].get("accuracy"))
        print(
            f"{r['version']:>7}  {r['parent'] if r['parent'] is not None else '-':>6}  {r['reason']:<11}  "
            f"{when(r['created_at']):<19}  {r['n_learned']:>9}  {'-' if acc is None else f'{acc:.4f}':>8}  "
            f"{_current_cell(r)}"
        )
        i += 1
    note = not_served_note(rows)
    if note:
        print(note)
    if rows and rows[0].get("owner"):
        owner = next(r for r in rows if r["current"])
        print(f"owner: {owner['owner']} (training partition {owner['partition']}, lag {owner['lag']})")


def _unverified_line(run: list[dict[str, Any]]) -> str:
    """One record that failed verification, or a run of them summed up in one line: how many, the versions they
    claim, where they are on the topic, why they failed and the first error."""
    r = run[0]
    if len(run) == 1:
        where = "" if r.get("offset") is None else f" at offset {r['offset']}"
        return (
            f"{r['version']!s:>7}  UNVERIFIED ({r['rejected']}){where}: ignored by scorers and the trainer; "
            f"{str(r['error'])[:80]}"
        )
    versions = [int(x["version"]) for x in run if isinstance(x.get("version"), int)]
    claimed = f"v{min(versions)}-v{max(versions)}" if versions else "?"
    reasons = Counter(str(x["rejected"]) for x in run)
    by = ", ".join(f"{reason}: {n:,}" for reason, n in reasons.most_common())
    return (
        f"{'...':>7}  {len(run):,} UNVERIFIED release records claiming {claimed} ({by}){_offsets(run)}: ignored "
        f"by scorers and the trainer; the first: {str(r['error'])[:80]} (--json lists each)"
    )


def _offsets(run: list[dict[str, Any]]) -> str:
    by_partition: dict[int, list[int]] = {}
    for x in run:
        if x.get("offset") is not None:
            by_partition.setdefault(int(x.get("models_partition") or 0), []).append(int(x["offset"]))
    if not by_partition:
        return ""
    if len(by_partition) == 1:
        offsets = next(iter(by_partition.values()))
        return f" at offsets {min(offsets)}-{max(offsets)}"
    parts = ", ".join(f"p{p} {min(o)}-{max(o)}" for p, o in sorted(by_partition.items()))
    return f" at offsets {parts}"
