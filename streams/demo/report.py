"""The demo report: a summary dict, PNG plots and a self-contained ``report.html`` (images embedded as base64).

>>> segment_accuracy([True, True, False, True], [2])
[{'label': 'before the first drift', 'from': 0, 'to': 2, 'n': 2, 'accuracy': 1.0}, \
{'label': 'after drift 1', 'from': 2, 'to': 4, 'n': 2, 'accuracy': 0.5}]
"""

from __future__ import annotations

import base64
import html
import itertools
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from driftline.util import percentile
from streams.audit import release_rows
from streams.demo import plots
from streams.demo.collect import RunData
from streams.demo.runner import DemoResult, read_decisions

__all__ = ["guard_tax", "segment_accuracy", "summarize", "write_report"]


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


def _alarm_points(drift: Sequence[dict[str, Any]], gap: int) -> list[int]:
    """First alarm of each burst (alarms closer than ``gap`` examples count as one drift)."""
    points: list[int] = []
    for a in sorted(d["index"] for d in drift):
        if not points or a - points[-1] > gap:
            points.append(a)
    return points


def _ms(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def summarize(result: DemoResult, data: RunData) -> dict[str, Any]:
    """The numbers of a run (what ``--json`` prints and the report's table shows)."""
    # A cold model (before its first release learned anything) answers null: that is not a wrong answer.
    correct = [None if r["prediction"] is None else r["prediction"] == r["label"] for r in data.training]
    answered = [c for c in correct if c is not None]
    if result.drifts:
        points, basis = [d.index for d in result.drifts], "known drift points of the built-in stream"
    else:
        points, basis = _alarm_points(data.drift, max(200, len(correct) // 20))[:5], "first drift alarms"
    latencies = [float(p["scored_at"] - p["ts"]) for p in data.predictions]
    span = (
        (max(p["scored_at"] for p in data.predictions) - min(p["scored_at"] for p in data.predictions)) / 1000
        if len(data.predictions) > 1
        else 0.0
    )
    last = result.samples[-1] if result.samples else None
    reasons = Counter(r["reason"] for r in data.releases)
    guard = Counter({k: v for k, v in (last.guard if last else {}).items()})
    delays = [(r["label_ts"] - r["event_ts"]) / 1000.0 for r in data.training]
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
        "answered": len(answered),
        "accuracy": round(sum(answered) / len(answered), 4) if answered else None,
        "accuracy_segments": segment_accuracy(correct, points),
        "segments_basis": basis,
        "drift_points": [{"index": d.index, "kind": d.kind, "width": d.width} for d in result.drifts],
        "alarms": len(data.drift),
        "alarm_signals": dict(Counter(f"{d['detector']}/{d['signal']}" for d in data.drift)),
        "alarm_indices": [d["index"] for d in data.drift],
        "versions_released": len(data.releases),
        "latest_version": max((r["version"] for r in data.releases), default=0),
        "served_version": last.served_version if last else 0,
        "releases_by_reason": dict(reasons),
        "promotions": sum(n for reason, n in reasons.items() if reason not in ("initial", "rollback")),
        "rollbacks": reasons.get("rollback", 0),
        "guard_decisions": dict(guard),
        "throughput_eps": round(len(data.predictions) / span, 1) if span > 0 else None,
        "produce_rate_eps": round(result.features_sent / result.produce_s, 1) if result.produce_s else None,
        "latency_p50_ms": _ms(percentile(latencies, 50)),
        "latency_p99_ms": _ms(percentile(latencies, 99)),
        "label_delay_p50_s": round(sorted(delays)[len(delays) // 2], 3) if delays else None,
        "dead_letters": data.deadletters,
        "duration_s": round(result.samples[-1].t, 1) if result.samples else 0.0,
        "worker_exit": dict(result.worker_exit),
    }


def _img(path: Path, alt: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<figure><img alt="{html.escape(alt)}" src="data:image/png;base64,{data}"/></figure>'


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 10 else f"{value:,.1f}"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, dict):
        return ", ".join(f"{k}: {_fmt(v)}" for k, v in sorted(value.items())) or "-"
    return str(value)


def _rows(pairs: Sequence[tuple[str, Any]]) -> str:
    return "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(_fmt(v))}</td></tr>" for k, v in pairs)


def _table(head: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    if not rows:
        return '<p class="muted">none</p>'
    th = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(_fmt(c))}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table class='grid'><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>"


CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2rem auto;max-width:1180px;color:#222;
padding:0 1rem}
h1{margin-bottom:.2rem}h2{margin-top:2rem;border-bottom:1px solid #ddd;padding-bottom:.2rem}
.muted{color:#777}.kpis{display:flex;gap:1rem;flex-wrap:wrap;margin:1rem 0}
.kpi{background:#f4f7fb;border-radius:8px;padding:.7rem 1rem;min-width:130px}
.kpi b{display:block;font-size:1.5rem;color:#1f4e79}.kpi span{color:#555;font-size:.85rem}
table{border-collapse:collapse;margin:.5rem 0}th,td{padding:.3rem .8rem;text-align:left;vertical-align:top}
table.summary th{color:#555;font-weight:normal;width:16rem}table.summary tr:nth-child(odd){background:#fafafa}
table.grid{width:100%}table.grid thead th{background:#eef2f7}table.grid td,table.grid th{border-bottom:1px solid #eee}
figure{margin:1rem 0}img{max-width:100%;border:1px solid #eee;border-radius:4px}
"""


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
    if not pairs:
        return {"plain_learner": name, "plain_accuracy": None, "served_accuracy_same_events": None,
                "guard_tax": None}  # fmt: skip
    served = sum(s for s, _ in pairs) / len(pairs)
    base = sum(p for _, p in pairs) / len(pairs)
    return {
        "plain_learner": name,
        "plain_accuracy": round(base, 4),
        "served_accuracy_same_events": round(served, 4),
        "guard_tax": round(base - served, 4),  # accuracy given up by serving guarded snapshots
    }


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
    out_dir.mkdir(parents=True, exist_ok=True)
    summary = summarize(result, data)
    if plain is not None:
        summary.update(guard_tax(data.training, plain, plain_name))
    window = max(100, min(1000, len(data.training) // 25 or 100))
    pngs = {
        "accuracy": plots.accuracy_plot(
            out_dir / "accuracy.png",
            data.training,
            data.drift,
            data.releases,
            result.drifts,
            window,
            plain=plain,
            plain_name=plain_name,
        ),
        "throughput_latency": plots.throughput_latency_plot(
            out_dir / "throughput_latency.png", data.predictions
        ),
        "label_delay": plots.label_delay_plot(out_dir / "label_delay.png", data.training, result.label_delay),
        "pipeline": plots.pipeline_plot(out_dir / "pipeline.png", result.samples),
    }
    summary["plots"] = {k: str(p) for k, p in pngs.items()}
    decisions = read_decisions(
        result.run_dir / "audit" / f"{result.settings.kafka.topic_prefix}{result.settings.model.name}.jsonl",
        last=50,
    )
    # What each release changed, from the signed audit trail (streams/audit.py).
    summary["release_changes"] = release_rows(
        result.run_dir / "audit" / f"{result.settings.kafka.topic_prefix}{result.settings.model.name}.jsonl"
    )
    path = out_dir / "report.html"
    path.write_text(_html(summary, data, decisions, pngs))
    summary["report"] = str(path)
    return path, summary


def _html(
    summary: dict[str, Any], data: RunData, decisions: list[dict[str, Any]], pngs: dict[str, Path]
) -> str:
    s = summary
    kpis = [
        ("events", _fmt(s["events"])),
        ("accuracy", f"{s['accuracy']:.1%}" if s["accuracy"] is not None else "-"),
        *([("guard tax", f"{100 * s['guard_tax']:+.1f} pts")] if s.get("guard_tax") is not None else []),
        ("versions released", _fmt(s["versions_released"])),
        ("drift alarms", _fmt(s["alarms"])),
        ("latency p99", f"{_fmt(s['latency_p99_ms'])} ms"),
        ("dead letters", _fmt(s["dead_letters"])),
    ]
    kpi_html = "".join(f"<div class='kpi'><b>{html.escape(v)}</b><span>{k}</span></div>" for k, v in kpis)
    seg_rows = [
        (g["label"], f"{g['from']:,}-{g['to']:,}", g["n"], g["accuracy"]) for g in s["accuracy_segments"]
    ]
    summary_rows = [
        ("outcome", f"{s['outcome']}: {s['problem']}" if s["problem"] else s["outcome"]),
        ("data", s["source"]),
        ("events produced / predictions / labels", f"{s['events']:,} / {s['predictions']:,} / {s['labels']:,}"),
        ("training examples joined (model answered)", f"{s['training_examples']:,} ({s['answered']:,})"),
        ("accuracy (served model, overall)", s["accuracy"]),
        *([(f"plain {s['plain_learner']} (no guard) / served, same events",
            f"{_fmt(s['plain_accuracy'])} / {_fmt(s['served_accuracy_same_events'])}"),
           ("guard tax (plain minus served)", s["guard_tax"])] if "guard_tax" in s else []),
        ("versions released (latest, served at end)", f"{s['versions_released']} (v{s['latest_version']}, "
                                                      f"v{s['served_version']})"),
        ("releases by reason", s["releases_by_reason"]),
        ("promotions / rollbacks", f"{s['promotions']} / {s['rollbacks']}"),
        ("guard decisions", s["guard_decisions"]),
        ("drift alarms", f"{s['alarms']} ({_fmt(s['alarm_signals'])})"),
        ("throughput (predictions/s while scoring)", s["throughput_eps"]),
        ("producer rate (events/s)", s["produce_rate_eps"]),
        ("end-to-end latency p50 / p99 (ms)", f"{_fmt(s['latency_p50_ms'])} / {_fmt(s['latency_p99_ms'])}"),
        ("label delay p50 (s)", s["label_delay_p50_s"]),
        ("dead letters", s["dead_letters"]),
        ("topic prefix", s["topic_prefix"]),
        ("duration (s)", s["duration_s"]),
    ]  # fmt: skip
    releases = [(r["version"], r["parent"], r["reason"], r["index"], r["accuracy"], r["decision"][:120])
                for r in data.releases]  # fmt: skip
    alarms = [(d["index"], d["detector"], d["signal"], d["version"]) for d in data.drift]
    guard = [(d.get("index"), d.get("outcome"), d.get("reason"), d.get("candidate"), str(d.get("text", ""))[:140])
             for d in decisions]  # fmt: skip
    changed = s.get("release_changes", [])
    when = time.strftime("%Y-%m-%d %H:%M:%S")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>driftline demo report</title>
<meta name="viewport" content="width=device-width, initial-scale=1"><style>{CSS}</style></head>
<body>
<h1>driftline demo report</h1>
<p class="muted">{html.escape(when)} &middot; model <b>{html.escape(s["model"])}</b> &middot; topics
<code>{html.escape(s["topic_prefix"])}*</code> &middot; {html.escape(s["outcome"])}</p>
<div class="kpis">{kpi_html}</div>
<h2>Summary</h2><table class="summary">{_rows(summary_rows)}</table>
<h2>Accuracy over time</h2>
{_img(pngs["accuracy"], "rolling accuracy of the served model with drift alarms, promotions and rollbacks")}
<p>Accuracy per segment ({html.escape(s["segments_basis"])}):</p>
{_table(("segment", "labelled events", "n", "accuracy"), seg_rows)}
<h2>Throughput and latency</h2>
{_img(pngs["throughput_latency"], "predictions per second and end-to-end latency over time")}
<h2>Label delay</h2>
{_img(pngs["label_delay"], "label delay distribution")}
<h2>Backlog</h2>
{_img(pngs["pipeline"], "consumer lag and pending joins over time")}
<h2>Releases</h2>
{_table(("version", "parent", "reason", "at example", "accuracy", "guard decision"), releases)}
<h2>What changed in each release</h2>
{_table(("version", "parent", "reason", "learned from", "largest changes", "guard evidence"), changed)}
<h2>Guard decisions</h2>
{_table(("at example", "outcome", "reason", "candidate", "why"), guard)}
<h2>Drift alarms</h2>
{_table(("at example", "detector", "signal", "served version"), alarms)}
</body></html>
"""
