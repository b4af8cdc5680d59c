"""The ``driftline replay --report DIR`` report: ``DIR/accuracy.png`` and ``DIR/report.html``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from streams.reporting.page import fmt, img, kv_table, write_html
from streams.reporting.plots import accuracy_plot

__all__ = ["write_replay_report"]


def write_replay_report(
    directory: str | Path,
    summary: Mapping[str, Any],
    outcomes: Sequence[Any],
    *,
    title: str = "driftline replay",
    drift_points: Sequence[int] = (),
    window: int = 500,
    baselines: Mapping[str, Sequence[int]] | None = None,
) -> Path:
    """Write the report of a replay summary (``ReplayResult.summary()``); returns the HTML path.

    ``outcomes``: 1/0 per labelled event, was the served model right (for regression, a summary with ``mae``: the
    absolute error per labelled event, None before a numeric answer); ``baselines``: other learners' outcomes on
    the same events (the plain learner), drawn next to the served one.
    """
    directory = Path(directory)
    metric = "accuracy" if "accuracy" in summary else "mae"
    if metric == "mae":
        series: list[Any] = list(outcomes)
        others = {k: list(v) for k, v in (baselines or {}).items()}
    else:
        series = [bool(o) for o in outcomes]
        others = {k: [bool(o) for o in v] for k, v in (baselines or {}).items()}
    releases = [
        (p["index"], p["version"], p["reason"])
        for p in [*summary.get("promotions", ()), *summary.get("rollbacks", ())]
    ]
    png = accuracy_plot(
        directory / "accuracy.png",
        series,
        window=window,
        title=title,
        alarms=summary.get("alarms", ()),
        releases=releases,
        drifts=[(p, 1) for p in drift_points],
        baselines=others,
        metric=metric,
    )
    notes = (
        f"Rolling prequential {'accuracy' if metric == 'accuracy' else 'MAE (absolute error, lower is better)'} "
        "of what the served model predicted; dashed: concept-drift alarms; ^ "
        "challenger/manual promotions, v rollbacks, ticks along the bottom: incremental releases."
    )
    if baselines:
        notes += (
            " Thin line: a plain learner on the same events, learning every label at the same delay with no guard; "
            "the gap between it and the served line is the guard tax (summary: guard_tax)."
        )
    promotions, rollbacks = len(summary.get("promotions", ())), len(summary.get("rollbacks", ()))
    kpis = [("events", fmt(summary.get("n"))), (metric, fmt(summary.get(metric)))]
    if "guard_tax" in summary:  # as the text output shows it: accuracy points, or the relative MAE increase
        kpis.append(
            ("guard tax", f"{100 * summary['guard_tax']:+.2f} {'pts' if metric == 'accuracy' else '% MAE'}")
        )
    kpis += [
        ("drift alarms", fmt(len(summary.get("alarms", ())))),
        ("promotions / rollbacks", f"{promotions} / {rollbacks}"),
    ]
    sections = [
        (
            f"{'Accuracy' if metric == 'accuracy' else 'MAE'} over time",
            img(png, f"rolling {metric} with drift alarms, promotions and rollbacks"),
        ),
        ("Summary", f"<p>{notes}</p>{kv_table([(str(k), v) for k, v in summary.items()])}"),
    ]
    return write_html(directory / "report.html", title, sections, kpis=kpis)
