"""The ``driftline demo`` report: the run's summary (what ``--json`` prints), four PNGs and ``report.html``.

>>> segment_accuracy([True, True, False, True], [2])
[{'label': 'before the first drift', 'from': 0, 'to': 2, 'n': 2, 'accuracy': 1.0}, \
{'label': 'after drift 1', 'from': 2, 'to': 4, 'n': 2, 'accuracy': 0.5}]
"""

from __future__ import annotations

import html
import itertools
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from driftline.settings import Settings
from driftline.util import percentile
from streams.audit import release_rows
from streams.demo.collect import RunData
from streams.demo.runner import DemoResult, read_decisions
from streams.model_registry import model_owners
from streams.releases import read_checked_releases
from streams.reporting import plots
from streams.reporting.page import fmt, grid_table, img, kv_table, write_html

__all__ = ["guard_tax", "newest_per_model", "segment_accuracy", "summarize", "write_report"]


def segment_accuracy(correct: Sequence[bool | None], points: Sequence[int]) -> list[dict[str, Any]]:
    """Accuracy before the first drift point and after each one (until the next); ``None`` (no answer) skipped."""
    bounds = [0, *sorted(p for p in points if 0 < p < len(correct)), len(correct)]
    out = []
    for k, (lo, hi) in enumerate(itertools.pairwise(bounds)):
        part = [c for c in correct[lo:hi] if c is not None]
        out.append(
            {
                "label": "before the first drift" if k == 0 else f"after drift {k}",
                "from": lo,
                "to": hi,
                "n": len(part),
                "accuracy": round(sum(part) / len(part), 4) if part else None,
            }
        )
    return out


def _alarm_points(indices: Sequence[int], gap: int) -> list[int]:
    """First alarm of each burst (alarms closer than ``gap`` examples count as one drift)."""
    points: list[int] = []
    for a in sorted(indices):
        if not points or a - points[-1] > gap:
            points.append(a)
    return points


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


def summarize(result: DemoResult, data: RunData) -> dict[str, Any]:
    """The numbers of a run (what ``--json`` prints and the report's table shows)."""
    # A cold model (before its first release learned anything) answers null: that is not a wrong answer.
    regression = result.settings.model.task == "regression"
    correct = [
        None if r["prediction"] is None or regression else r["prediction"] == r["label"]
        for r in data.training
    ]
    errors = [e for e in abs_errors(data.training) if e is not None]
    answered = [c for c in correct if c is not None]
    alarm_indices = [d["index"] for d in data.drift]
    if result.drifts:
        points, basis = [d.index for d in result.drifts], "known drift points of the built-in stream"
    else:
        points, basis = _alarm_points(alarm_indices, max(200, len(correct) // 20))[:5], "first drift alarms"
    latencies = [float(p["scored_at"] - p["ts"]) for p in data.predictions]
    scored_at = [p["scored_at"] for p in data.predictions]
    span = (max(scored_at) - min(scored_at)) / 1000 if len(scored_at) > 1 else 0.0
    last = result.samples[-1] if result.samples else None
    reasons = Counter(r["reason"] for r in data.releases)
    return {
        "outcome": result.outcome,
        "problem": result.problem,
        "source": result.source,
        "topic_prefix": result.settings.kafka.topic_prefix,
        "model": result.settings.model.name,
        "events": result.features_sent,
        "labels": result.labels_sent,
        "predictions": len(data.predictions),
        "training_examples": len(data.training),
        "learned": last.learned if last else 0,
        "task": result.settings.model.task,
        "answered": len(errors) if regression else len(answered),
        "accuracy": round(sum(answered) / len(answered), 4) if answered else None,
        **({"mae": round(sum(errors) / len(errors), 4) if errors else None} if regression else {}),
        "accuracy_segments": segment_accuracy(correct, points),
        "segments_basis": basis,
        "drift_points": [{"index": d.index, "kind": d.kind, "width": d.width} for d in result.drifts],
        "alarms": len(data.drift),
        "alarm_signals": dict(Counter(f"{d['detector']}/{d['signal']}" for d in data.drift)),
        "alarm_indices": alarm_indices,
        "versions_released": len(data.releases),
        "latest_version": max((r["version"] for r in data.releases), default=0),
        "served_version": last.served_version if last else 0,
        "releases_by_reason": dict(reasons),
        "promotions": sum(n for reason, n in reasons.items() if reason not in ("initial", "rollback")),
        "rollbacks": reasons.get("rollback", 0),
        "guard_decisions": dict(last.guard) if last else {},
        "throughput_eps": round(len(data.predictions) / span, 1) if span > 0 else None,
        "produce_rate_eps": round(result.features_sent / result.produce_s, 1) if result.produce_s else None,
        "latency_p50_ms": _round(percentile(latencies, 50), 1),
        "latency_p99_ms": _round(percentile(latencies, 99), 1),
        "label_delay_p50_s": _round(percentile(_delays_s(data), 50), 3),
        **served_behind(data, result.settings.model.name),
        "dead_letters": data.deadletters,
        "duration_s": round(last.t, 1) if last else 0.0,
        "worker_exit": dict(result.worker_exit),
    }


def abs_errors(training: Sequence[dict[str, Any]]) -> list[float | None]:
    """Per training row: the served prediction's absolute error (None: no numeric answer, e.g. a cold model)."""
    out: list[float | None] = []
    for r in training:
        try:
            out.append(abs(float(r["prediction"]) - float(r["label"])))
        except (TypeError, ValueError):
            out.append(None)
    return out


def served_behind(data: RunData, model: str) -> dict[str, float | None]:
    """How far behind the stream the served model was, in events: for each answered event of ``model``, its
    position among the model's events minus where in the labelled stream its served version was released (the
    release's ``index``: not its ``n_learned``, which a promoted challenger counts from its own start). The label
    delay is its floor; the rest is the pipeline (join, trainer, release to the scorers). A guard tax read with this
    next to it: a trainer starved of CPU (a loaded machine) serves an older model than a plain learner learning
    each label as it arrives (session 35: 1,000-1,800 events behind at load 15-20, against 300 of label delay).

    >>> rows = [{"model": "m", "version": v, "prediction": p} for v, p in ((1, None), (2, 1), (2, 0), (3, 1))]
    >>> served_behind(RunData(training=rows, releases=[{"model": "m", "version": 2, "index": 1},
    ...     {"model": "m", "version": 3, "index": 1}]), "m")
    {'served_behind_p50_events': 1.0, 'served_behind_p90_events': 2.0}
    """
    learned = {
        r["version"]: r["index"] for r in data.releases if "index" in r and r.get("model") in (model, None)
    }
    own = [r for r in data.training if r.get("model") in (model, None)]
    behind = [
        float(k - learned[r["version"]])
        for k, r in enumerate(own)
        if r["prediction"] is not None and r.get("version") in learned
    ]
    return {
        "served_behind_p50_events": _round(percentile(behind, 50), 1),
        "served_behind_p90_events": _round(percentile(behind, 90), 1),
    }


def _delays_s(data: RunData) -> list[float]:
    return [(r["label_ts"] - r["event_ts"]) / 1000.0 for r in data.training]


def guard_tax(training: Sequence[dict[str, Any]], plain: Sequence[bool | None], name: str) -> dict[str, Any]:
    """Served and plain accuracy on the same rows (served answered, plain saw the event) and the difference.

    >>> rows = [{"prediction": p, "label": 1} for p in (None, 1, 1, 0)]
    >>> guard_tax(rows, [True, True, False, True], "lr")
    {'plain_learner': 'lr', 'plain_accuracy': 0.6667, 'served_accuracy_same_events': 0.6667, 'guard_tax': 0.0}
    """
    pairs = [
        (r["prediction"] == r["label"], bool(p))
        for r, p in zip(training, plain, strict=True)
        if r["prediction"] is not None and p is not None
    ]
    served = sum(s for s, _ in pairs) / len(pairs) if pairs else None
    base = sum(p for _, p in pairs) / len(pairs) if pairs else None
    return {
        "plain_learner": name,
        "plain_accuracy": _round(base, 4),
        "served_accuracy_same_events": _round(served, 4),
        # Accuracy given up by serving guarded snapshots.
        "guard_tax": None if base is None or served is None else round(base - served, 4),
    }


def newest_per_model(settings: Settings) -> list[dict[str, Any]]:
    """The newest verified release of each model: version, labels learned, recent accuracy. ``n_learned`` is the
    trainer's live count, as ``models list`` shows it (the release's figure lags it once the guard stops
    promoting), or the release's when no trainer reported the model."""
    newest: dict[str, dict[str, Any]] = {}
    for r in read_checked_releases(settings).verified:
        if int(r["version"]) > int(newest.get(r["model"], {}).get("version", 0)):
            newest[r["model"]] = r
    live = model_owners(settings)
    return [
        {
            "model": name,
            "version": int(r["version"]),
            "n_learned": int(live.get(name, {}).get("n_learned", r["metrics"].get("n_learned", 0))),
            "accuracy": r["metrics"].get("rolling_accuracy"),
        }
        for name, r in sorted(newest.items())
    ]


def write_report(
    result: DemoResult,
    data: RunData,
    out_dir: Path,
    plain: Sequence[bool | None] | None = None,
    plain_name: str = "learner",
) -> tuple[Path, dict[str, Any]]:
    """Write the PNGs and ``report.html`` into ``out_dir``; returns the HTML path and the summary.

    ``plain`` (per training row: was a plain learner right on that event, see :mod:`streams.demo.baseline`) adds
    the plain learner to the accuracy plot and ``plain_accuracy``/``guard_tax`` to the summary.
    """
    out_dir = Path(out_dir)
    summary = summarize(result, data)
    if plain is not None:
        summary.update(guard_tax(data.training, plain, plain_name))
    samples = result.samples
    regression = "mae" in summary
    pngs = {
        "accuracy": plots.accuracy_plot(
            out_dir / "accuracy.png",
            abs_errors(data.training)
            if regression
            else [None if r["prediction"] is None else r["prediction"] == r["label"] for r in data.training],
            metric="mae" if regression else "accuracy",
            **({"title": "MAE of the served model, drift alarms and releases"} if regression else {}),
            window=max(100, min(1000, len(data.training) // 25 or 100)),
            alarms=summary["alarm_indices"],
            releases=[
                (r["index"], r["version"], r["reason"]) for r in data.releases if r["reason"] != "initial"
            ],
            drifts=[(d.index, d.width) for d in result.drifts],
            baselines=None if plain is None else {f"plain {plain_name} (no guard), same events": plain},
        ),
        "throughput_latency": plots.throughput_latency_plot(
            out_dir / "throughput_latency.png", data.predictions
        ),
        "label_delay": plots.label_delay_plot(
            out_dir / "label_delay.png", _delays_s(data), result.label_delay
        ),
        "pipeline": plots.pipeline_plot(
            out_dir / "pipeline.png",
            [s.t for s in samples],
            {
                "consumer lag (all groups)": [s.lag for s in samples],
                "pending joins": [s.pending_joins for s in samples],
                "produced - scored": [s.produced - s.scored for s in samples],
            },
        ),
    }
    summary["plots"] = {k: str(p) for k, p in pngs.items()}
    # What each release changed and why the guard decided, from the signed audit trail (streams/audit.py).
    summary["release_changes"] = release_rows(result.audit_path)
    sections = _sections(summary, data, read_decisions(result.audit_path, last=50), pngs)
    title = "driftline demo report"
    path = write_html(
        out_dir / "report.html", title, sections, subtitle=_subtitle(summary), kpis=_kpis(summary)
    )
    summary["report"] = str(path)
    return path, summary


def _subtitle(s: dict[str, Any]) -> str:
    return (
        f"{html.escape(time.strftime('%Y-%m-%d %H:%M:%S'))} &middot; model <b>{html.escape(s['model'])}</b> "
        f"&middot; topics <code>{html.escape(s['topic_prefix'])}*</code> &middot; {html.escape(s['outcome'])}"
    )


def _kpis(s: dict[str, Any]) -> list[tuple[str, str]]:
    return [
        ("events", fmt(s["events"])),
        ("MAE", fmt(s["mae"]))
        if "mae" in s
        else ("accuracy", f"{s['accuracy']:.1%}" if s["accuracy"] is not None else "-"),
        *([("guard tax", f"{100 * s['guard_tax']:+.1f} pts")] if s.get("guard_tax") is not None else []),
        ("versions released", fmt(s["versions_released"])),
        ("drift alarms", fmt(s["alarms"])),
        ("latency p99", f"{fmt(s['latency_p99_ms'])} ms"),
        ("dead letters", fmt(s["dead_letters"])),
    ]


def _sections(
    s: dict[str, Any], data: RunData, decisions: list[dict[str, Any]], pngs: dict[str, Path]
) -> list[tuple[str, str]]:
    rows = [
        ("outcome", f"{s['outcome']}: {s['problem']}" if s["problem"] else s["outcome"]),
        ("data", s["source"]),
        ("events produced / predictions / labels", f"{s['events']:,} / {s['predictions']:,} / {s['labels']:,}"),
        ("training examples joined (model answered)", f"{s['training_examples']:,} ({s['answered']:,})"),
        (f"{'MAE' if 'mae' in s else 'accuracy'} (served model, overall)", s.get("mae", s["accuracy"])),
        *([(f"plain {s['plain_learner']} (no guard) / served, same events",
            f"{fmt(s['plain_accuracy'])} / {fmt(s['served_accuracy_same_events'])}"),
           ("guard tax (plain minus served)", s["guard_tax"])] if "guard_tax" in s else []),
        ("versions released (latest, served at end)", f"{s['versions_released']} (v{s['latest_version']}, "
                                                      f"v{s['served_version']})"),
        ("releases by reason", s["releases_by_reason"]),
        ("promotions / rollbacks", f"{s['promotions']} / {s['rollbacks']}"),
        ("guard decisions", s["guard_decisions"]),
        ("drift alarms", f"{s['alarms']} ({fmt(s['alarm_signals'])})"),
        ("throughput (predictions/s while scoring)", s["throughput_eps"]),
        ("producer rate (events/s)", s["produce_rate_eps"]),
        ("end-to-end latency p50 / p99 (ms)", f"{fmt(s['latency_p50_ms'])} / {fmt(s['latency_p99_ms'])}"),
        ("label delay p50 (s)", s["label_delay_p50_s"]),
        ("served model behind the stream p50 / p90 (events; the label delay is its floor)",
         f"{fmt(s.get('served_behind_p50_events'))} / {fmt(s.get('served_behind_p90_events'))}"),
        ("dead letters", s["dead_letters"]),
        ("topic prefix", s["topic_prefix"]),
        ("duration (s)", s["duration_s"]),
    ]  # fmt: skip
    segments = [
        (g["label"], f"{g['from']:,}-{g['to']:,}", g["n"], g["accuracy"]) for g in s["accuracy_segments"]
    ]
    releases = [(r["version"], r["parent"], r["reason"], r["index"], r["accuracy"], r["decision"][:120])
                for r in data.releases]  # fmt: skip
    guard = [(d.get("index"), d.get("outcome"), d.get("reason"), d.get("candidate"), str(d.get("text", ""))[:140])
             for d in decisions]  # fmt: skip
    alarms = [(d["index"], d["detector"], d["signal"], d["version"]) for d in data.drift]
    return [
        ("Summary", kv_table(rows)),
        (
            f"{'MAE' if 'mae' in s else 'Accuracy'} over time",
            img(
                pngs["accuracy"],
                f"rolling {'MAE' if 'mae' in s else 'accuracy'} of the served model with drift alarms, promotions "
                "and rollbacks",
            )
            + f"<p>Accuracy per segment ({html.escape(s['segments_basis'])}):</p>"
            + grid_table(("segment", "labelled events", "n", "accuracy"), segments),
        ),
        (
            "Throughput and latency",
            img(pngs["throughput_latency"], "predictions per second and latency over time"),
        ),
        ("Label delay", img(pngs["label_delay"], "label delay distribution")),
        ("Backlog", img(pngs["pipeline"], "consumer lag and pending joins over time")),
        (
            "Releases",
            grid_table(("version", "parent", "reason", "at example", "accuracy", "guard decision"), releases),
        ),
        (
            "What changed in each release",
            grid_table(
                ("version", "parent", "reason", "learned from", "largest changes", "guard evidence"),
                s["release_changes"],
            ),
        ),
        ("Guard decisions", grid_table(("at example", "outcome", "reason", "candidate", "why"), guard)),
        ("Drift alarms", grid_table(("at example", "detector", "signal", "served version"), alarms)),
    ]
