"""Read what a run left on its topics: predictions, training examples, drift alarms, releases, dead letters.

The report is built from these records rather than from metrics alone: every prediction carries its event time
and scoring time, every training example its served prediction and label, so accuracy, latency and label delay
are exact, not histogram estimates.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from connectors.consumer import Received
from connectors.tail import assign_tail, read_until_end
from driftline.errors import StackError
from driftline.settings import Settings
from schemas.codec import default_codec
from streams.decisions import decision_object

__all__ = ["RunData", "collect"]

Row = dict[str, Any]


@dataclass
class RunData:
    """Plain rows per topic, ready for the report (predictions and training ordered by event time)."""

    predictions: list[Row] = field(default_factory=list)  # id, ts, scored_at
    training: list[Row] = field(default_factory=list)  # id, label, prediction, event_ts, label_ts
    drift: list[Row] = field(default_factory=list)  # detector, signal, index, version
    releases: list[Row] = field(default_factory=list)  # version, parent, reason, index, decision, accuracy
    deadletters: int = 0


def _read(settings: Settings, name: str) -> list[Received]:
    """Every record of topic ``name`` (none when the topic was never created: nothing of it happened)."""
    try:
        consumer, ends = assign_tail(settings, name, None)
    except StackError:
        return []
    try:
        return read_until_end(consumer, default_codec(), name, ends)
    finally:
        consumer.close()


def _prediction(v: Row, record_ts: int) -> Row:
    return {"id": v["id"], "ts": int(v["ts"]), "scored_at": int(v.get("scored_at") or record_ts)}


def _training(v: Row, _: int) -> Row:
    return {"id": v["id"], "label": v.get("label"), "prediction": v.get("prediction"),
            "event_ts": int(v["event_ts"]), "label_ts": int(v["label_ts"]), "model": v.get("model"),
            "version": int(v.get("version") or 0)}  # fmt: skip


def _drift(v: Row, _: int) -> Row:
    return {"detector": v["detector"], "signal": v["signal"], "index": int(v.get("index", -1)),
            "version": int(v.get("version") or 0)}  # fmt: skip


def _release(v: Row, _: int) -> Row:
    decision = decision_object(v.get("decision"))
    metrics = v.get("metrics") or {}
    index = decision.get("index")
    return {
        "version": int(v["version"]),
        "model": v.get("model"),
        "parent": v.get("parent"),
        "reason": v.get("reason", ""),
        # Where in the labelled stream the release happened: the guard's decision index, else its lineage size.
        "index": int(index) if isinstance(index, (int, float)) else int(metrics.get("n_learned", 0)),
        "decision": decision.get("text", ""),
        "accuracy": metrics.get("rolling_accuracy", metrics.get("accuracy")),
    }


def collect(settings: Settings, every_model: bool = False) -> RunData:
    """Read every record of the run's topics (for the configured model, or ``every_model``) into a
    :class:`RunData`."""

    def rows(name: str, row: Callable[[Row, int], Row]) -> list[Row]:
        return [
            row(item.value, item.timestamp_ms)
            for item in _read(settings, name)
            if item.ok
            and item.value is not None
            and (every_model or item.value.get("model") == settings.model.name)
        ]

    data = RunData(
        predictions=rows("predictions", _prediction),
        training=rows("training", _training),
        drift=rows("drift", _drift),
        releases=rows("models", _release),
        deadletters=len(_read(settings, "deadletter")),
    )
    data.predictions.sort(key=lambda r: (r["ts"], _id_order(r["id"])))
    data.training.sort(key=lambda r: (r["event_ts"], _id_order(r["id"])))
    data.drift.sort(key=lambda r: r["index"])
    data.releases.sort(key=lambda r: r["version"])
    return data


def _id_order(event_id: str) -> tuple[int, str]:
    """Numeric ids (the built-in stream, CSV row numbers) in numeric order; anything else after, by text."""
    return (int(event_id), "") if event_id.isascii() and event_id.isdigit() else (1 << 62, event_id)
