"""``driftline explain ID`` as library functions: find a served prediction by its event id on ``predictions``,
then return its explanation (recorded at scoring time with ``model.explain``, else recomputed from the verified
release that served it: the same model on the same features gives the same numbers).

The search is bounded: it reads ``predictions`` from ``since_ms`` (the CLI's default: the last 24 hours) to the
end it has when called, for at most ``timeout`` seconds, and decodes only records whose bytes contain the id.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from confluent_kafka import KafkaException

from connectors.consumer import IncompleteRead, read_to_end
from driftline.errors import ArtifactError, DriftlineError, SchemaError
from driftline.settings import Settings
from learners.explain import explain_one
from schemas.codec import Codec, default_codec
from streams.model_diff import load_header_and_model
from streams.releases import read_releases


class NotFound(DriftlineError, LookupError):
    """No prediction with that id in the part of ``predictions`` searched."""


def find_predictions(
    settings: Settings,
    event_id: str,
    *,
    since_ms: int | None = None,
    timeout: float = 30.0,
    codec: Codec | None = None,
) -> dict[str, dict[str, Any]]:
    """``{model: its newest Prediction with id == event_id (plus partition and offset)}``: ids are the producer's,
    so two models (two tenants' events) may have answered the same one."""
    codec = codec or default_codec()
    topic = settings.topic("predictions")
    needle = event_id.encode("utf-8")
    found: dict[str, dict[str, Any]] = {}
    group = f"{settings.kafka.topic_prefix}driftline-explain"
    try:
        for msg in read_to_end(settings, topic, group, since_ms=since_ms, timeout=timeout, strict=True):
            value = msg.value() or b""
            if needle not in value:  # cheap filter: most records are never decoded
                continue
            try:
                record = codec.decode("Prediction", value, topic=topic, allow_json=True)
            except SchemaError:
                continue
            if record.get("id") == event_id:
                found[str(record.get("model"))] = {
                    **record,
                    "partition": msg.partition(),
                    "offset": msg.offset(),
                }
    except (IncompleteRead, KafkaException) as exc:  # gave up at --timeout (a slow broker, a tiny --timeout)
        if not found:
            raise NotFound(
                f"explain: searched only part of {topic} ({exc}) and found no prediction with id "
                f"{event_id!r} in it: raise --timeout or narrow --since"
            ) from exc
        for prediction in found.values():
            prediction["search_complete"] = False
    return found


def _choose(found: dict[str, dict[str, Any]], preferred: str) -> dict[str, Any] | None:
    if preferred in found:
        return found[preferred]
    return max(found.values(), key=lambda p: (int(p.get("ts") or 0), int(p["offset"])), default=None)


def explain_prediction(
    settings: Settings,
    event_id: str,
    *,
    since_ms: int | None = None,
    timeout: float = 30.0,
    model: str | None = None,
) -> dict[str, Any]:
    """What :func:`find_predictions` found for ``model`` (default: the configured model if it answered the id,
    else the newest answer), with ``method``, ``contributions``, where they came from, and ``also_answered_by``:
    the other models that answered the same id (``[{model, version}]``)."""
    started = time.monotonic()
    found = find_predictions(settings, event_id, since_ms=since_ms, timeout=timeout)
    prediction = found.get(model) if model is not None else _choose(found, settings.model.name)
    if prediction is None:
        # A time the operator can read: "since 1796444934527 ms" said nothing about how far back it looked.
        window = "" if since_ms is None else f" since {_utc(since_ms)}"
        whose = "" if model is None else f" by model {model!r}"
        answered = f" (answered by {', '.join(sorted(found))})" if found else ""
        raise NotFound(
            f"explain: no prediction with id {event_id!r}{whose} on {settings.topic('predictions')}{window}"
            f"{answered} (searched {time.monotonic() - started:.1f} s; widen --since or check --topic-prefix)"
        )
    out = {k: prediction.get(k) for k in ("id", "ts", "model", "version", "prediction", "proba", "features")}
    out.update(partition=prediction["partition"], offset=prediction["offset"])
    # False when the read gave up before the end: a newer answer (or another model's) may not have been seen.
    out["search_complete"] = prediction.get("search_complete", True)
    out["also_answered_by"] = [
        {"model": name, "version": p.get("version")}
        for name, p in sorted(found.items())
        if name != prediction.get("model")
    ]
    if prediction.get("explanation") is not None:
        out.update(
            method=prediction.get("explanation_method") or "unknown",
            contributions=dict(prediction["explanation"]),
            source="recorded at scoring time",
        )
        return out
    if not prediction.get(
        "version"
    ):  # scored before the model's first release: not answered, no model to ask
        raise ArtifactError(
            f"explain: {prediction.get('model')!r} had no released model yet when it scored {event_id!r} "
            "(version 0, prediction null): the event was not answered, so there is nothing to explain"
        )
    release = _release(settings, str(prediction["model"]), int(prediction["version"]))
    _, loaded = load_header_and_model(release, settings)
    method, contributions = explain_one(loaded, prediction.get("features") or {})
    out.update(
        method=method,
        contributions=contributions,
        source=f"recomputed from the verified release v{prediction['version']} that served it",
    )
    return out


def _release(settings: Settings, model: str, version: int) -> Mapping[str, Any]:
    for release in read_releases(settings):
        if release.get("model") == model and int(release["version"]) == version:
            return release
    raise ArtifactError(
        f"explain: the prediction was served by {model!r} v{version}, which is no longer on "
        f"{settings.topic('models')} (compacted away), and it carries no recorded explanation"
    )


def _utc(ms: int) -> str:
    """``ms`` since the epoch as a UTC time, e.g. ``2026-12-06 04:39:52 UTC``."""
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
