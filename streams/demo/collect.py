"""Read what a run left on its topics: predictions, training examples, drift alarms, releases, dead letters.

The report is built from these records rather than from metrics alone: every prediction carries its version,
event time and scoring time, every training example its served prediction and label, so accuracy, latency and
label delay are exact, not histogram estimates.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from connectors.tail import assign_tail, read_until_end
from driftline.settings import Settings
from schemas.codec import default_codec

__all__ = ["RunData", "collect"]


@dataclass
class RunData:
    """Plain rows per topic, ready for plotting (ordered by event time)."""

    predictions: list[dict[str, Any]] = field(default_factory=list)  # id, version, ts, scored_at
    training: list[dict[str, Any]] = field(
        default_factory=list
    )  # id, label, prediction, version, event_ts, ...
    drift: list[dict[str, Any]] = field(default_factory=list)  # detector, signal, index, ts, version
    releases: list[dict[str, Any]] = field(
        default_factory=list
    )  # version, reason, created_at, index, decision
    deadletters: int = 0
    undecodable: int = 0


def _read(settings: Settings, name: str) -> list[Any]:
    from driftline.errors import StackError

    codec = default_codec()
    try:
        consumer, ends = assign_tail(settings, name, None)
    except StackError:
        return []  # the topic was never created: nothing of that kind happened
    try:
        return read_until_end(consumer, codec, name, ends)
    finally:
        consumer.close()


def _release_row(value: dict[str, Any]) -> dict[str, Any]:
    try:
        decision = json.loads(value.get("decision") or "null") or {}
    except ValueError:
        decision = {}
    metrics = value.get("metrics") or {}
    index = decision.get("index")
    return {
        "version": int(value["version"]),
        "parent": value.get("parent"),
        "reason": value.get("reason", ""),
        "created_at": int(value.get("created_at", 0)),
        # Where in the labelled stream the release happened: the guard's decision index, else its lineage size.
        "index": int(index) if isinstance(index, (int, float)) else int(metrics.get("n_learned", 0)),
        "outcome": decision.get("outcome", ""),
        "decision": decision.get("text", ""),
        "accuracy": metrics.get("rolling_accuracy", metrics.get("accuracy")),
    }


def collect(settings: Settings, every_model: bool = False) -> RunData:
    """Read every record of the run's topics (for the configured model, or ``every_model``) into a
    :class:`RunData`."""
    data = RunData()
    model = settings.model.name

    def mine(value: dict[str, Any]) -> bool:
        return every_model or value.get("model") == model

    for item in _read(settings, "predictions"):
        if not item.ok or item.value is None:
            data.undecodable += 1
            continue
        v = item.value
        if not mine(v):
            continue
        data.predictions.append(
            {
                "id": v["id"],
                "version": int(v.get("version") or 0),
                "ts": int(v["ts"]),
                "scored_at": int(v.get("scored_at") or item.timestamp_ms),
                "prediction": v.get("prediction"),
            }
        )
    for item in _read(settings, "training"):
        if not item.ok or item.value is None:
            data.undecodable += 1
            continue
        v = item.value
        if not mine(v):
            continue
        data.training.append(
            {
                "id": v["id"],
                "label": v.get("label"),
                "prediction": v.get("prediction"),
                "version": int(v.get("version") or 0),
                "event_ts": int(v["event_ts"]),
                "label_ts": int(v["label_ts"]),
            }
        )
    for item in _read(settings, "drift"):
        if item.ok and item.value is not None and mine(item.value):
            v = item.value
            data.drift.append(
                {
                    "detector": v["detector"],
                    "signal": v["signal"],
                    "index": int(v.get("index", -1)),
                    "ts": int(v["ts"]),
                    "version": int(v.get("version") or 0),
                }
            )
    for item in _read(settings, "models"):
        if item.ok and item.value is not None and mine(item.value):
            data.releases.append(_release_row(item.value))
    data.deadletters = len(_read(settings, "deadletter"))
    data.predictions.sort(key=lambda r: (r["ts"], _id_order(r["id"])))
    data.training.sort(key=lambda r: (r["event_ts"], _id_order(r["id"])))
    data.drift.sort(key=lambda r: r["index"])
    data.releases.sort(key=lambda r: r["version"])
    return data


def _id_order(event_id: str) -> tuple[int, str]:
    """Numeric ids (the built-in stream, CSV row numbers) in numeric order; anything else after, by text."""
    return (int(event_id), "") if event_id.isdigit() else (1 << 62, event_id)
