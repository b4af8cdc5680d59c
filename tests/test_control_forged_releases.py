"""Verify, then choose: releases forged without the key change nothing users see (issue 12, part B).

Forged records (junk signature, huge versions, a forged copy of a real version) sit on ``models`` next to real ones:
a scorer reading them in one batch, or in its start-up backlog, serves the newest *real* release; the trainer keeps
releasing after a forged 2^63-1; ``models list/show`` and ``status --json`` show the truth and mark the forged ones.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from connectors.topics import ensure_topics
from driftline.config import LearnerSpec
from learners.artifacts import build_release
from learners.specs import build_learner
from tests.fault_helpers import make_events, publish, running_all
from tests.pipeline_helpers import Pipeline

pytestmark = [pytest.mark.kafka]

KEY = "control-tests-signing-key-0123456789abcdef"  # >= 32 bytes
MODEL = "default"
HUGE = (2**62, 2**63 - 1)


@pytest.fixture
def pipeline(prefix: str, redis_url: str, tmp_path: Path) -> Iterator[Pipeline]:
    p = Pipeline(prefix, tmp_path, redis_url, extra_env={"DRIFTLINE_SIGNING_KEY": KEY})
    with running_all(p):
        yield p


def real(version: int, n: int = 100) -> dict[str, Any]:
    model = build_learner(LearnerSpec(), "classification", 0)
    for e in make_events(n, seed=version):
        model.learn_one(e.features, e.label)
    return build_release(
        model, name=MODEL, version=version, parent=version - 1 if version > 1 else None,
        reason="manual", metrics={"accuracy": 0.5 + version / 100}, key=KEY.encode(), n_learned=n,
    )  # fmt: skip


def forged(version: int, *, of: dict[str, Any] | None = None) -> dict[str, Any]:
    """What anyone who can write ``models`` can publish: a real-looking record with a junk signature."""
    base = dict(of or real(1), version=version, metrics={"accuracy": 0.99})
    return dict(base, signature="ab" * 32)


def send(pipeline: Pipeline, records: list[dict[str, Any]]) -> None:
    # One producer, one flush: the records land together and a follower reads them in one poll batch.
    ensure_topics(pipeline.settings())
    with pipeline.producer() as producer:
        for record in records:
            producer.send("models", "ModelRelease", record, MODEL)


def served(pipeline: Pipeline) -> float:
    return pipeline.metric_sum("driftline_served_model_version", model=MODEL)


def rejected(pipeline: Pipeline) -> float:
    return pipeline.metric_sum("driftline_releases_rejected_total", model=MODEL, reason="signature")


def test_forged_releases_in_the_backlog_and_in_a_batch_never_hide_real_ones(pipeline: Pipeline) -> None:
    reals = {v: real(v) for v in range(1, 6)}
    backlog = [reals[1], reals[2], forged(HUGE[0]), reals[3], forged(HUGE[1]), reals[4]]
    backlog += [forged(99), forged(3, of=reals[3]), reals[5]]
    send(pipeline, backlog)

    # A scorer starting on that backlog serves the real latest, and counts the four forged records.
    (scorer,) = pipeline.start("score")
    pipeline.wait_until("v5 served", lambda: served(pipeline) == 5, timeout=60)
    pipeline.wait_until("4 forged releases counted", lambda: rejected(pipeline) == 4, timeout=30)
    assert "SECURITY: release default v9223372036854775807 refused" in scorer.log_tail(400)

    # Live: a forged 2^63-1 in the same batch as a real v6.
    send(pipeline, [forged(HUGE[1]), real(6)])
    pipeline.wait_until("v6 served", lambda: served(pipeline) == 6, timeout=60)
    pipeline.wait_until("the live forgery counted", lambda: rejected(pipeline) == 5, timeout=30)

    # The commands show the truth: v6 current, the forged records listed and marked, nothing crashes.
    rows = pipeline.cli_json("models", "list", "--json")
    genuine = [r for r in rows if r["verified"] is True]
    fakes = [r for r in rows if r["verified"] is False]
    assert [r["version"] for r in genuine] == [6, 5, 4, 3, 2, 1]
    assert [r["version"] for r in genuine if r["current"]] == [6]
    assert sorted(r["version"] for r in fakes) == sorted([HUGE[0], HUGE[1], HUGE[1], 99, 3])
    assert all(not r["current"] and r["rejected"] == "signature" for r in fakes)
    text = pipeline.cli("models", "list").stdout
    assert "UNVERIFIED" in text and "9223372036854775807" in text

    (current,) = pipeline.cli_json("models", "show", "--json")
    assert (current["version"], current["verified"], current["metrics"]) == (6, True, real(6)["metrics"])
    (v3,) = pipeline.cli_json("models", "show", "3", "--json")
    assert v3["verified"] is True and v3["metrics"] == reals[3]["metrics"]  # not the forged copy's 0.99
    (v99,) = pipeline.cli_json("models", "show", "99", "--json")
    assert v99["verified"] is False and v99["rejected"] == "signature" and not v99["current"]

    (status,) = pipeline.cli_json("status", "--json")
    (model,) = [m for m in status["models"] if m["model"] == MODEL]
    assert model["latest_release"]["version"] == 6 and model["releases"] == 6
    assert sorted(u["version"] for u in model["unverified_releases"]) == sorted(
        [HUGE[0], HUGE[1], HUGE[1], 99, 3]
    )
    assert "UNVERIFIED release v99" in pipeline.cli("status").stdout

    # Without the key the commands cannot tell: they say so instead of pretending.
    env = {k: v for k, v in pipeline.env().items() if k != "DRIFTLINE_SIGNING_KEY"}
    no_key = subprocess.run(
        [sys.executable, "-m", "streams.cli", "models", "list", "--json"],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert no_key.returncode == 0 and "UNVERIFIED" in no_key.stderr, no_key.stderr
    unchecked = [json.loads(line) for line in no_key.stdout.splitlines()]
    assert {r["verified"] for r in unchecked} <= {None, False}
    assert {r["version"] for r in unchecked} == {r["version"] for r in rows}
    pipeline.assert_alive()


def test_the_trainer_keeps_releasing_after_a_forged_huge_version(pipeline: Pipeline) -> None:
    send(pipeline, [forged(HUGE[1]), forged(HUGE[0])])
    pipeline.extra_env["DRIFTLINE__MODEL__RELEASE_EVERY"] = "60"
    (worker,) = pipeline.start("all")
    publish(pipeline, make_events(200, seed=5), label_lag=0)
    pipeline.wait_learned(200)
    genuine = pipeline.wait_until(
        "the trainer's releases", lambda: [r for r in pipeline.releases() if r["version"] < 1000][1:] or None
    )
    versions = [r["version"] for r in pipeline.releases() if r["version"] < 1000]
    assert versions[0] == 1 and len(versions) >= 2, versions  # v1 initial, then incremental releases
    assert genuine
    assert "out of range" not in worker.log_tail(2000)
    pipeline.wait_until(
        "the scorer serves the trainer's latest",
        lambda: served(pipeline) == max(versions),
        timeout=30,
    )
    # The trainer counted the forged records it ignored when choosing the next version.
    assert pipeline.metric_sum("driftline_releases_rejected_total", model=MODEL) >= 2
