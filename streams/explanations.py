"""``driftline explain ID`` as library functions: find a served prediction by its event id on ``predictions``,
then return its explanation (recorded at scoring time with ``model.explain``, else recomputed from the verified
release that served it: the same model on the same features gives the same numbers).

The search is bounded: it reads ``predictions`` from ``since_ms`` (the CLI's default: the last 24 hours) to the
end it has when called, for at most ``timeout`` seconds, and decodes only records whose bytes contain the id.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from connectors.consumer import read_to_end
from driftline.errors import ArtifactError, DriftlineError, SchemaError
from driftline.settings import Settings
from learners.explain import explain_one
from schemas.codec import Codec, default_codec
from streams.model_diff import load_header_and_model
from streams.releases import read_releases


class NotFound(DriftlineError, LookupError):
    """No prediction with that id in the part of ``predictions`` searched."""


def find_prediction(
    settings: Settings,
    event_id: str,
    *,
    since_ms: int | None = None,
    timeout: float = 30.0,
    codec: Codec | None = None,
) -> dict[str, Any] | None:
    """The newest Prediction with ``id == event_id`` (plus its partition and offset), or None."""
    codec = codec or default_codec()
    topic = settings.topic("predictions")
    needle = event_id.encode("utf-8")
    found: dict[str, Any] | None = None
    group = f"{settings.kafka.topic_prefix}driftline-explain"
    for msg in read_to_end(settings, topic, group, since_ms=since_ms, timeout=timeout):
        value = msg.value() or b""
        if needle not in value:  # cheap filter: most records are never decoded
            continue
        try:
            record = codec.decode("Prediction", value, topic=topic, allow_json=True)
        except SchemaError:
            continue
        if record.get("id") == event_id:
            found = {**record, "partition": msg.partition(), "offset": msg.offset()}
    return found


def explain_prediction(
    settings: Settings, event_id: str, *, since_ms: int | None = None, timeout: float = 30.0
) -> dict[str, Any]:
    """What :func:`find_prediction` found, with ``method``, ``contributions`` and where they came from."""
    started = time.monotonic()
    prediction = find_prediction(settings, event_id, since_ms=since_ms, timeout=timeout)
    if prediction is None:
        window = "" if since_ms is None else f" since {since_ms} ms"
        raise NotFound(
            f"explain: no prediction with id {event_id!r} on {settings.topic('predictions')}{window} "
            f"(searched {time.monotonic() - started:.1f} s; widen --since or check --topic-prefix)"
        )
    out = {k: prediction.get(k) for k in ("id", "ts", "model", "version", "prediction", "proba", "features")}
    out.update(partition=prediction["partition"], offset=prediction["offset"])
    if prediction.get("explanation") is not None:
        out.update(
            method=prediction.get("explanation_method") or "unknown",
            contributions=dict(prediction["explanation"]),
            source="recorded at scoring time",
        )
        return out
    release = _release(settings, str(prediction["model"]), int(prediction["version"]))
    _, model = load_header_and_model(release, settings)
    method, contributions = explain_one(model, prediction.get("features") or {})
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
