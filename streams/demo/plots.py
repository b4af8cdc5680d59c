"""The demo report's PNG plots (matplotlib, headless ``Agg`` backend).

Each function takes plain rows (see :mod:`streams.demo.collect`) and writes one PNG, returning its path.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from driftline.util import percentile, rolling_mean
from streams.demo.probe import Sample
from streams.demo.stream import DriftPoint

__all__ = [
    "accuracy_plot",
    "label_delay_plot",
    "pipeline_plot",
    "throughput_latency_plot",
]

COLORS = {
    "accuracy": "#1f4e79",
    "plain": "#e67e22",
    "drift": "#9e9e9e",
    "alarm": "#8e44ad",
    "promote": "#2e7d32",
    "rollback": "#c62828",
    "p50": "#1f77b4",
    "p99": "#d62728",
}
DPI = 110


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")  # no display: the demo runs in terminals and CI
    import matplotlib.pyplot as plt

    plt.rcParams.update(
        {
            "axes.spines.top": False,
            "axes.spines.right": False,
            "axes.grid": True,
            "grid.alpha": 0.3,
            "font.size": 10,
        }
    )
    return plt


def _mark_drifts(ax: Any, drifts: Sequence[DriftPoint]) -> None:
    for d in drifts:
        if d.kind == "gradual":
            ax.axvspan(d.index - d.width / 2, d.index + d.width / 2, color=COLORS["drift"], alpha=0.15, lw=0)
            ax.axvline(d.index, color=COLORS["drift"], lw=1, ls=":")
        else:
            ax.axvline(d.index, color=COLORS["drift"], lw=2, alpha=0.6)


def accuracy_plot(
    path: Path,
    training: Sequence[dict[str, Any]],
    drift: Sequence[dict[str, Any]],
    releases: Sequence[dict[str, Any]],
    drifts: Sequence[DriftPoint],
    window: int,
    plain: Sequence[bool | None] | None = None,
    plain_name: str = "learner",
) -> Path:
    """Rolling accuracy of the served model over the labelled stream, with drifts, alarms and releases.

    ``plain``: per training row, whether a plain learner (no guard) was right on the same event; drawn next to it.
    """
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(11, 5.2))
    # Until the first trained release reaches the scorers the served model answers null: shown, not scored.
    cold = next((i for i, r in enumerate(training) if r["prediction"] is not None), len(training))
    correct = [r["prediction"] == r["label"] for r in training[cold:]]
    acc = [float("nan")] * cold + rolling_mean(correct, window)
    xs = list(range(len(acc)))
    _mark_drifts(ax, drifts)
    if cold:
        ax.axvspan(0, cold, color="#f3e5ab", alpha=0.5, lw=0, label="no trained model yet (null predictions)")
    ax.plot(xs, acc, color=COLORS["accuracy"], lw=1.6, label=f"served model accuracy (rolling {window})")
    base: list[float] = []
    if plain is not None and len(plain) == len(training):
        # Same rows as the served curve (from the first answered one), so the gap is the guard tax.
        base = [float("nan")] * cold + rolling_mean([bool(c) for c in plain[cold:]], window)
        ax.plot(xs, base, color=COLORS["plain"], lw=1.0, alpha=0.9,
                label=f"plain {plain_name} (no guard), same events")  # fmt: skip
    # The first few values after the cold start average only a handful of examples: leave them out of the scale.
    settled = [a for a in acc[cold + window // 2 :] + base[cold + window // 2 :] if a == a]
    ax.set_ylim(max(0.0, min(settled, default=0.5) - 0.1), 1.02)
    ax.set_xlim(0, max(len(acc), 1))
    ax.set_xlabel("labelled event")
    ax.set_ylabel("accuracy")
    for k, a in enumerate(drift):
        ax.axvline(a["index"], color=COLORS["alarm"], lw=1, ls="--", alpha=0.8,
                   label="drift alarm" if k == 0 else None)  # fmt: skip
    for kind, marker in (("promote", "^"), ("rollback", "v")):
        pts = [
            r
            for r in releases
            if (r["reason"] == "rollback") == (kind == "rollback") and r["reason"] != "initial"
        ]
        if pts:
            px = [min(max(r["index"], 0), max(len(acc) - 1, 0)) for r in pts]
            py = [acc[x] if acc and acc[x] == acc[x] else ax.get_ylim()[0] for x in px]
            ax.scatter(px, py, marker=marker, s=70, color=COLORS[kind], zorder=5, edgecolor="white",
                       label="promotion" if kind == "promote" else "rollback")  # fmt: skip
            for r, x, y in zip(pts, px, py, strict=True):
                ax.annotate(f"v{r['version']}", (x, y), textcoords="offset points", xytext=(0, 8),
                            ha="center", fontsize=8, color=COLORS[kind])  # fmt: skip
    if drifts:
        ax.plot([], [], color=COLORS["drift"], lw=2, alpha=0.6, label="true drift (band: gradual)")
    # Below the axes: inside, it would hide the start of the curve or the first releases.
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=5, fontsize=8, frameon=False)
    ax.set_title("Accuracy of the served model, drift alarms and releases")
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path


def _bins(values: Sequence[tuple[float, float]], width: float) -> dict[int, list[float]]:
    out: dict[int, list[float]] = {}
    for t, v in values:
        out.setdefault(int(t // width), []).append(v)
    return out


def throughput_latency_plot(path: Path, predictions: Sequence[dict[str, Any]]) -> Path:
    """Predictions per second and end-to-end latency (p50, p99 per time bin) over the run."""
    plt = _pyplot()
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(11, 5.6), sharex=True)
    if predictions:
        t0 = min(p["scored_at"] for p in predictions)
        per_s = _bins([((p["scored_at"] - t0) / 1000.0, 1.0) for p in predictions], 1.0)
        xs = list(range(max(per_s) + 1))
        top.fill_between(xs, [len(per_s.get(x, [])) for x in xs], step="post", color="#4a90c2", alpha=0.5)
        top.step(xs, [len(per_s.get(x, [])) for x in xs], where="post", color="#1f4e79", lw=1)
        # About 60 points whatever the run length: per-2 s quantiles of a long run are mostly noise.
        width = max(2.0, float(round(max(per_s) / 60)))
        lat = _bins(
            [((p["scored_at"] - t0) / 1000.0, (p["scored_at"] - p["ts"])) for p in predictions], width
        )
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
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path


def label_delay_plot(path: Path, training: Sequence[dict[str, Any]], label_delay_events: int) -> Path:
    """Distribution of label delay (label time minus event time) over the joined examples."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(11, 3.8))
    delays = sorted((r["label_ts"] - r["event_ts"]) / 1000.0 for r in training)
    if delays:
        ax.hist(delays, bins=50, color="#7e57c2", alpha=0.8)
        med = percentile(delays, 50, 0.0)
        ax.axvline(med, color="black", ls="--", lw=1, label=f"median {med:.2f} s")
        ax.legend(loc="upper right", fontsize=8)
    ax.set_xlabel("label delay (s)")
    ax.set_ylabel("examples")
    ax.set_title(f"Label delay (labels published {label_delay_events} events after their event)")
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path


def pipeline_plot(path: Path, samples: Sequence[Sample]) -> Path:
    """Consumer lag and pending joins over the run, from the sampled metrics."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(11, 3.4))
    ts = [s.t for s in samples]
    ax.plot(ts, [s.lag for s in samples], color="#d62728", lw=1.2, label="consumer lag (all groups)")
    ax.plot(ts, [s.pending_joins for s in samples], color="#7e57c2", lw=1.2, label="pending joins")
    ax.plot(ts, [s.produced - s.scored for s in samples], color="#888888", lw=1, ls=":",
            label="produced - scored")  # fmt: skip
    ax.set_xlabel("seconds since producing started")
    ax.set_ylabel("records")
    ax.set_title("Backlog: consumer lag and predictions waiting for their label")
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path
