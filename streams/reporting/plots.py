"""The reports' PNG plots: each function takes plain values, writes one PNG and returns its path.

matplotlib's object API (``Figure`` on an Agg canvas): no pyplot global state, no backend switch at import, so a
report can be written from any thread and in terminals and CI with no display.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from driftline.util import percentile, rolling_mean

__all__ = ["accuracy_plot", "label_delay_plot", "pipeline_plot", "throughput_latency_plot"]

COLORS = {
    "accuracy": "#1f4e79",
    "drift": "#9e9e9e",
    "alarm": "#8e44ad",
    "promote": "#2e7d32",
    "rollback": "#c62828",
    "p50": "#1f77b4",
    "p99": "#d62728",
}
# Baselines (the plain learner first): none of them the served line's blue, so the two are told apart.
BASELINE_COLORS = ("#e67e22", "#6a3d9a", "#00897b")
DPI = 110


def _figure(height: float, rows: int = 1) -> tuple[Any, list[Any]]:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, height), dpi=DPI)
    FigureCanvasAgg(fig)
    axes = list(fig.subplots(rows, 1, sharex=True, squeeze=False)[:, 0])
    for ax in axes:
        ax.spines[["top", "right"]].set_visible(False)
        ax.grid(alpha=0.3)
    return fig, axes


def _save(fig: Any, path: Path) -> Path:
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    return path


def accuracy_plot(
    path: Path,
    correct: Sequence[bool | float | None],
    *,
    window: int,
    title: str = "Accuracy of the served model, drift alarms and releases",
    alarms: Sequence[int] = (),
    releases: Sequence[tuple[int, int, str]] = (),
    drifts: Sequence[tuple[int, int]] = (),
    baselines: Mapping[str, Sequence[bool | float | None]] | None = None,
    metric: str = "accuracy",
) -> Path:
    """Rolling accuracy of the served model, one value per labelled event (``None``: no model answered yet);
    with ``metric="mae"``, ``correct`` holds absolute errors and the rolling MAE is drawn (lower is better).

    ``alarms``: drift alarm indices (dashed lines); ``releases``: ``(index, version, reason)``, marked ^ (promotion)
    or v (``rollback``), incremental ones as a rug of ticks along the bottom; ``drifts``: known drifts
    ``(centre, width)``, a band when wider than one event;
    ``baselines``: other learners' right/wrong on the same events (the plain learner), drawn as thin lines.
    """
    fig, (ax,) = _figure(5.2)
    # Until the first trained release reaches the scorers the served model answers null: shown, not scored.
    cold = next((i for i, c in enumerate(correct) if c is not None), len(correct))
    value = bool if metric == "accuracy" else float
    # An event the served model did not answer after the cold start (a scorer still on the untrained v1 for its
    # partitions) is left out of the rolling value, as out of the summary's accuracy and the guard tax: counted as
    # wrong it drew a dip to 0.2 that no model served (session 35's demo), and as an error of 0 a better MAE.
    acc = [float("nan")] * cold + rolling_mean(
        [None if c is None else value(c) for c in correct[cold:]], window
    )
    xs = range(len(acc))
    for centre, width in drifts:
        if width > 1:
            ax.axvspan(centre - width / 2, centre + width / 2, color=COLORS["drift"], alpha=0.15, lw=0)
            ax.axvline(centre, color=COLORS["drift"], lw=1, ls=":")
        else:
            ax.axvline(centre, color=COLORS["drift"], lw=2, alpha=0.6)
    if cold:
        ax.axvspan(0, cold, color="#f3e5ab", alpha=0.5, lw=0, label="no trained model yet (null predictions)")
    name = "accuracy" if metric == "accuracy" else "MAE"
    ax.plot(xs, acc, color=COLORS["accuracy"], lw=1.6, label=f"served model {name} (rolling {window})")
    lines = [acc]
    for k, (name, series) in enumerate((baselines or {}).items()):
        if len(series) != len(correct):
            continue  # not on the same events: a gap between the lines would mean nothing
        # From the first answered event, as the served curve, so the gap is the guard tax.
        line = [float("nan")] * cold + rolling_mean(
            [
                None if c is None or b is None else value(b)
                for c, b in zip(correct[cold:], series[cold:], strict=True)
            ],
            window,
        )
        ax.plot(xs, line, color=BASELINE_COLORS[k % len(BASELINE_COLORS)], lw=1.0, alpha=0.9, label=name)
        lines.append(line)
    # The first values after the cold start average only a handful of examples: left out of the scale.
    settled = [a for line in lines for a in line[cold + window // 2 :] if a == a]
    if metric == "accuracy":
        ax.set_ylim(max(0.0, min(settled, default=0.5) - 0.1), 1.02)
    else:
        ax.set_ylim(0.0, max(settled, default=1.0) * 1.1 or 1.0)
    ax.set_xlim(0, max(len(acc), 1))
    for k, a in enumerate(alarms):
        ax.axvline(
            a, color=COLORS["alarm"], lw=1, ls="--", alpha=0.8, label="drift alarm" if k == 0 else None
        )
    last = max(len(acc) - 1, 0)
    # Incremental releases come every few dozen labels while the evidence holds: a rug along the bottom, not
    # markers, which would bury the curve and the promotions that matter (challenger, manual) under labels.
    steps = [min(max(index, 0), last) for index, _, reason in releases if reason == "incremental"]
    if steps:
        ax.plot(steps, [0.03] * len(steps), "|", ms=10, mew=1.2, color=COLORS["promote"], alpha=0.75,
                transform=ax.get_xaxis_transform(), label=f"incremental release ({len(steps)})")  # fmt: skip
    for kind, marker in (("promote", "^"), ("rollback", "v")):
        pts = [r for r in releases if r[2] != "incremental" and (r[2] == "rollback") == (kind == "rollback")]
        if not pts:
            continue
        px = [min(max(index, 0), last) for index, _, _ in pts]
        py = [acc[x] if acc and acc[x] == acc[x] else ax.get_ylim()[0] for x in px]
        ax.scatter(px, py, marker=marker, s=70, color=COLORS[kind], zorder=5, edgecolor="white",
                   label="promotion" if kind == "promote" else "rollback")  # fmt: skip
        if len(pts) > 30:
            continue  # so many that their version numbers would overlap into a smear
        for (_, version, _), x, y in zip(pts, px, py, strict=True):
            ax.annotate(f"v{version}", (x, y), textcoords="offset points", xytext=(0, 8), ha="center",
                        fontsize=8, color=COLORS[kind])  # fmt: skip
    if drifts:
        ax.plot([], [], color=COLORS["drift"], lw=2, alpha=0.6, label="true drift (band: gradual)")
    ax.set_xlabel("labelled event")
    ax.set_ylabel("accuracy" if metric == "accuracy" else "MAE (lower is better)")
    ax.set_title(title)
    # Below the axes: inside, it would hide the start of the curve or the first releases.
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=5, fontsize=8, frameon=False)
    return _save(fig, path)


def _bins(values: Sequence[tuple[float, float]], width: float) -> dict[int, list[float]]:
    out: dict[int, list[float]] = {}
    for t, v in values:
        out.setdefault(int(t // width), []).append(v)
    return out


def throughput_latency_plot(path: Path, predictions: Sequence[dict[str, Any]]) -> Path:
    """Predictions per second and end-to-end latency (p50, p99 per time bin) from prediction rows
    (``ts``: event time, ``scored_at``: when the prediction was published; both ms)."""
    fig, (top, bottom) = _figure(5.6, rows=2)
    if predictions:
        t0 = min(p["scored_at"] for p in predictions)
        per_s = _bins([((p["scored_at"] - t0) / 1000.0, 1.0) for p in predictions], 1.0)
        xs = list(range(max(per_s) + 1))
        counts = [len(per_s.get(x, [])) for x in xs]
        top.fill_between(xs, counts, step="post", color="#4a90c2", alpha=0.5)
        top.step(xs, counts, where="post", color="#1f4e79", lw=1)
        # About 60 points whatever the run length: per-2 s quantiles of a long run are mostly noise.
        width = max(2.0, float(round(max(per_s) / 60)))
        lat = _bins([((p["scored_at"] - t0) / 1000.0, p["scored_at"] - p["ts"]) for p in predictions], width)
        keys = sorted(lat)
        for q, name in ((50, "p50"), (99, "p99")):
            ys = [percentile(lat[k], q) for k in keys]
            bottom.plot([width * (k + 0.5) for k in keys], ys, marker=".", color=COLORS[name], label=name)
        bottom.set_yscale("symlog", linthresh=10)
        bottom.legend(loc="upper right", fontsize=8)
    top.set_ylabel("predictions / s")
    top.set_title("Throughput and end-to-end latency (event time to prediction published)")
    bottom.set_ylabel("latency (ms)")
    bottom.set_xlabel("seconds since the first prediction")
    return _save(fig, path)


def label_delay_plot(path: Path, delays_s: Sequence[float], label_delay_events: int) -> Path:
    """Distribution of label delay (label time minus event time, seconds) over the joined examples."""
    fig, (ax,) = _figure(3.8)
    if delays_s:
        ax.hist(delays_s, bins=50, color="#7e57c2", alpha=0.8)
        med = percentile(delays_s, 50, 0.0)
        ax.axvline(med, color="black", ls="--", lw=1, label=f"median {med:.2f} s")
        ax.legend(loc="upper right", fontsize=8)
    ax.set_xlabel("label delay (s)")
    ax.set_ylabel("examples")
    ax.set_title(f"Label delay (labels published {label_delay_events} events after their event)")
    return _save(fig, path)


def pipeline_plot(path: Path, t: Sequence[float], series: Mapping[str, Sequence[float]]) -> Path:
    """Backlog over the run: each named series against ``t`` (seconds since producing started)."""
    fig, (ax,) = _figure(3.4)
    for (name, ys), color in zip(series.items(), ("#d62728", "#7e57c2", "#888888"), strict=False):
        ax.plot(t, ys, color=color, lw=1.2, label=name)
    ax.set_xlabel("seconds since producing started")
    ax.set_ylabel("records")
    ax.set_title("Backlog: consumer lag and predictions waiting for their label")
    ax.legend(loc="upper left", fontsize=8)
    return _save(fig, path)
