"""The ``driftline replay`` report: accuracy over time with drift alarms, promotions and rollbacks marked (PNG),
and a self-contained HTML page with the PNGs embedded as base64. Plain inputs (lists of numbers); the live demo's
report is a separate generator (``streams/demo/report.py``).

Uses matplotlib's object API (``Figure`` + Agg canvas): no global pyplot state, no backend switching at import.
"""

from __future__ import annotations

import base64
import html
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from driftline.util import rolling_mean


def plot_accuracy(
    path: str | Path,
    outcomes: Sequence[float],
    *,
    window: int = 500,
    alarms: Sequence[int] = (),
    promotions: Sequence[int] = (),
    rollbacks: Sequence[int] = (),
    drift_points: Sequence[int] = (),
    title: str = "Prequential accuracy of the served model",
    baselines: Mapping[str, Sequence[float]] | None = None,
) -> Path:
    """Write a PNG of the rolling accuracy of ``outcomes`` (1 = correct, 0 = wrong, one per event).

    Vertical marks: red dotted = drift alarm, green = promotion, black dashed = rollback, grey = known drift point.
    ``baselines`` adds other models' outcome series (same length) as thin lines for comparison.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 4.2), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    xs = range(len(outcomes))
    ax.plot(xs, rolling_mean(outcomes, window), color="#1f5fa8", linewidth=1.4, label="guarded (served)")
    colors = ("#e67e22", "#6a3d9a", "#2e7d32")  # not the served line's blue: the two must be told apart
    for k, (name, series) in enumerate((baselines or {}).items()):
        ax.plot(
            range(len(series)),
            rolling_mean(series, window),
            color=colors[k % len(colors)],
            linewidth=0.9,
            alpha=0.85,
            label=name,
        )
    for points, style, label in (
        (drift_points, {"color": "grey", "linewidth": 2.5, "alpha": 0.35}, "true drift"),
        (alarms, {"color": "red", "linestyle": ":", "linewidth": 0.9}, "drift alarm"),
        (promotions, {"color": "green", "linewidth": 0.8, "alpha": 0.7}, "promotion"),
        (rollbacks, {"color": "black", "linestyle": "--", "linewidth": 1.0}, "rollback"),
    ):
        for k, p in enumerate(points):
            ax.axvline(p, label=label if k == 0 else None, **style)  # type: ignore[arg-type]
    ax.set_xlabel("event")
    ax.set_ylabel(f"accuracy (rolling {window})")
    ax.set_ylim(0.0, 1.02)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower left", fontsize=8, ncol=3)
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    return out


def write_html(
    path: str | Path,
    title: str,
    summary: Mapping[str, Any],
    images: Sequence[str | Path] = (),
    notes: str = "",
) -> Path:
    """Write a self-contained HTML page: title, notes, the PNGs inlined, and ``summary`` as a table."""
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>{html.escape(title)}</title>",
        "<style>body{font-family:sans-serif;margin:2em;max-width:1200px}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:3px 8px;text-align:left}"
        "img{max-width:100%}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
    ]
    if notes:
        parts.append(f"<p>{html.escape(notes)}</p>")
    for image in images:
        data = base64.b64encode(Path(image).read_bytes()).decode("ascii")
        parts.append(f"<p><img alt='{html.escape(Path(image).name)}' src='data:image/png;base64,{data}'></p>")
    parts.append("<table>")
    for key, value in summary.items():
        shown = value if isinstance(value, (str, int, float)) else json.dumps(value, default=str)
        text = str(shown)
        if len(text) > 400:
            text = text[:400] + "..."
        parts.append(f"<tr><th>{html.escape(str(key))}</th><td>{html.escape(text)}</td></tr>")
    parts.append("</table></body></html>")
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(parts), encoding="utf-8")
    return out


def write_replay_report(
    directory: str | Path,
    summary: Mapping[str, Any],
    outcomes: Sequence[float],
    *,
    title: str = "driftline replay",
    drift_points: Sequence[int] = (),
    window: int = 500,
    baselines: Mapping[str, Sequence[float]] | None = None,
) -> Path:
    """``DIR/accuracy.png`` and ``DIR/report.html`` for a replay summary (``ReplayResult.summary()``).

    ``baselines``: other learners' outcomes on the same events (the plain learner), drawn next to the served one.
    """
    directory = Path(directory)
    png = plot_accuracy(
        directory / "accuracy.png",
        outcomes,
        window=window,
        alarms=summary.get("alarms", ()),
        promotions=[p["index"] for p in summary.get("promotions", ()) if p.get("reason") != "incremental"],
        rollbacks=[p["index"] for p in summary.get("rollbacks", ())],
        drift_points=drift_points,
        title=title,
        baselines=baselines,
    )
    notes = (
        "Rolling prequential accuracy of what the served model predicted. Red dotted: concept-drift alarms; "
        "green: challenger/manual promotions (incremental releases are not drawn); black dashed: rollbacks."
    )
    if baselines:
        notes += (
            " Thin lines: a plain learner on the same events, learning every label at the same delay with no "
            "guard; the gap between it and the served line is the guard tax (summary: guard_tax)."
        )
    return write_html(directory / "report.html", title, summary, [png], notes)
