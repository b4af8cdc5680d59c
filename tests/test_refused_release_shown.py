"""A signed release that no scorer can load is not shown as served.

The scorer refuses it (counted as ``releases_rejected_total{reason="load"}``) and keeps serving the version it had;
before the scorers reported what they serve, ``status``, ``models list/show`` and the console called the refused
release current and served. Now each names the version the scorers serve and the refusal (version, reason, how
many scorers), and a loadable release published afterwards is shown as served again.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from driftline.config import LearnerSpec
from learners.artifacts import build_release, sign
from learners.specs import build_learner
from streams.console import sources
from streams.console.overview import Overview
from streams.model_registry import read_registry
from tests.fault_helpers import make_events, running_all
from tests.pipeline_helpers import SIGNING_KEY, Pipeline

pytestmark = [pytest.mark.kafka]

KEY = SIGNING_KEY.encode()
MODEL = "default"


@pytest.fixture
def pipeline(prefix: str, redis_url: str, tmp_path: Path) -> Iterator[Pipeline]:
    with running_all(Pipeline(prefix, tmp_path, redis_url)) as p:
        yield p


def release(version: int) -> dict[str, Any]:
    model = build_learner(LearnerSpec(), "classification", 0)
    for e in make_events(50, seed=version):
        model.learn_one(e.features, e.label)
    return build_release(
        model, name=MODEL, version=version, parent=version - 1 if version > 1 else None,
        reason="manual", metrics={}, key=KEY, n_learned=50,
    )  # fmt: skip


def signed_garbage(version: int) -> dict[str, Any]:
    """Correctly signed with the real key, but its artifact is no pickle: it verifies, and no scorer can load it."""
    record = release(version)
    payload = b"these bytes are not a compressed pickle"
    header = dict(json.loads(record["header"]), sha256=hashlib.sha256(payload).hexdigest())
    header_json = json.dumps(header, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return dict(
        record, artifact=payload, sha256=header["sha256"], header=header_json,
        signature=sign(header_json, payload, KEY),
    )  # fmt: skip


def _publish(pipeline: Pipeline, record: dict[str, Any]) -> None:
    with pipeline.producer() as producer:
        producer.send("models", "ModelRelease", record, MODEL)


def _served(pipeline: Pipeline) -> float:
    return pipeline.metric_sum("driftline_served_model_version", model=MODEL)


def _status_model(pipeline: Pipeline) -> dict[str, Any]:
    (status,) = pipeline.cli_json("status", "--json")
    (model,) = [m for m in status["models"] if m["model"] == MODEL]
    return model


def test_a_signed_release_no_scorer_can_load_is_shown_refused_not_served(pipeline: Pipeline) -> None:
    pipeline.start("score")
    _publish(pipeline, release(1))
    pipeline.wait_until("v1 served", lambda: _served(pipeline) == 1)
    _publish(pipeline, signed_garbage(2))
    pipeline.wait_until(
        "v2 refused",
        lambda: pipeline.metric_sum("driftline_releases_rejected_total", model=MODEL, reason="load") >= 1,
    )
    assert _served(pipeline) == 1

    # status --json: served is what the scorers serve; the refusal is named with its reason and scorer count.
    pipeline.wait_until(
        "the scorer's report", lambda: (_status_model(pipeline)["scorers"] or {}).get("refused")
    )
    model = _status_model(pipeline)
    assert model["latest_release"]["version"] == 2  # the newest verified release...
    assert (model["served_version"], model["served_version_from"]) == (
        1,
        "scorers",
    )  # ...is not what is served
    (refused,) = model["scorers"]["refused"]
    assert (refused["version"], refused["reason"], refused["scorers"]) == (2, "load", 1)
    assert "could not be loaded" in refused["message"]
    text = pipeline.cli("status").stdout
    assert "serving v1 (1 scorer)" in text and "serving v2" not in text, text
    assert "v2 was REFUSED by 1 scorer(s) (load)" in text, text

    # models show / list: v2 is the current release, and marked NOT SERVED; v1 is served.
    (shown,) = pipeline.cli_json("models", "show", "--json")
    assert shown["version"] == 2 and shown["served_by_scorers"] == 0
    assert [(r["reason"], r["scorers"]) for r in shown["refused_by_scorers"]] == [("load", 1)]
    text = pipeline.cli("models", "show").stdout
    assert "NOT SERVED: REFUSED by 1 scorer(s) (load)" in text and "v1 served by 1 scorer(s)" in text, text
    rows = {r["version"]: r for r in pipeline.cli_json("models", "list", "--json")}
    assert rows[2]["refused_by_scorers"] and rows[2]["served_by_scorers"] == 0
    assert rows[1]["served_by_scorers"] == 1 and not rows[1]["refused_by_scorers"]
    text = pipeline.cli("models", "list", "--model", MODEL).stdout
    assert "v2 is the newest release, but NOT SERVED" in text and "the scorers serve v1" in text, text

    # The console's lineage says the same.
    lineage = sources.lineage(pipeline.settings(), read_registry(pipeline.settings()), [])
    nodes = {n["version"]: n for n in lineage["releases"]}
    assert nodes[2]["current"] and nodes[2]["refused_by_scorers"] and nodes[2]["served_by_scorers"] == 0
    assert nodes[1]["served_by_scorers"] == 1
    overview = Overview(pipeline.settings())
    try:
        shown_overview = overview.get()
    finally:
        overview.close()
    assert shown_overview["served_version"] == 1
    assert [(r["version"], r["reason"]) for r in shown_overview["refused"]] == [(2, "load")]

    # A loadable release afterwards: served, and the refusal of the older v2 is history (not shown as a problem).
    _publish(pipeline, release(3))
    pipeline.wait_until("v3 served", lambda: _served(pipeline) == 3)
    pipeline.wait_until("v3 reported", lambda: _status_model(pipeline)["served_version"] == 3)
    text = pipeline.cli("status").stdout
    assert "serving v3 (1 scorer)" in text and "REFUSED" not in text, text
    pipeline.assert_alive()


def test_the_report_is_bounded_per_scorer_and_forgets_scorers_that_stopped(settings: Any) -> None:
    import redis

    from streams import serving

    client = redis.Redis.from_url(settings.redis.url.get())
    key = serving.serving_key(settings, MODEL)
    gone = {"served": 1, "at": 1, "refused": [{"version": 9, "reason": "load", "message": "old", "at": 1}]}
    client.hset(key, "a-scorer-that-stopped", json.dumps(gone))
    report = serving.ServingReport(settings, scorer="s1")
    report.served(MODEL, 3)
    for v in range(4, 12):
        report.refused(MODEL, v, "load", "x" * 10_000)
    report.publish(force=True)
    assert set(client.hkeys(key)) == {b"s1"}  # the stopped scorer's field is dropped
    assert 0 < client.pttl(key) <= serving.STALE_S * 1000  # and the whole key expires if every scorer stops
    got = serving.read_serving(settings, MODEL)
    assert got is not None and (got["scorers"], got["served_version"], got["versions"]) == (1, 3, {"3": 1})
    assert [r["version"] for r in got["refused"]] == [11, 10, 9, 8, 7]  # the newest REFUSALS_KEPT
    assert all(len(r["message"]) == serving.MESSAGE_CHARS for r in got["refused"])
    report.close()  # a scorer that stops removes its field: it no longer counts as serving
    got = serving.read_serving(settings, MODEL)
    assert got is not None and (got["scorers"], got["served_version"]) == (0, None)
