"""Logs under attack: thousands of forged releases or changelog records do not make thousands of log lines.

Before, a scorer wrote one SECURITY line per refused release (3,000 lines for 3,000 forged releases), a trainer
one per refused changelog record at a restore, and ``models list`` one line per unverified release. Now the first
few of each kind are logged in full, then one summary line with the count; the counters still count each one, and
``models list`` sums a run of unverified records up in one line with the count and offset range (``--json`` keeps
one object per record).
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from driftline.config import LearnerSpec
from driftline.settings import Settings
from learners.artifacts import build_release, sign
from learners.specs import build_learner
from streams.commands.models_print import print_releases
from streams.metrics import build_metrics
from streams.releases import ReleaseFollower, verify_problem
from streams.security_log import ThrottledLog


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _messages(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "driftline.security"]


def test_the_first_lines_of_each_kind_are_full_then_one_summary_per_interval(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = _Clock()
    throttled = ThrottledLog(logging.getLogger("driftline.security"), burst=5, interval_s=60.0, clock=clock)
    with caplog.at_level(logging.WARNING, logger="driftline.security"):
        for v in range(3000):
            throttled.warning(
                "refused releases of model m", "signature", "SECURITY: release m v%d refused", v
            )
        throttled.warning("refused releases of model m", "header", "SECURITY: release m v%d refused", -1)
        assert len(_messages(caplog)) == 6  # 5 signature + 1 header, nothing summed up yet
        clock.now += 61
        throttled.flush()
        lines = _messages(caplog)
        assert lines[:5] == [f"SECURITY: release m v{v} refused" for v in range(5)]
        (summary,) = lines[6:]
        assert summary.startswith(
            "SECURITY: ... and 2,995 more refused releases of model m in the last 61 s: reason signature"
        ), summary
        # The next interval starts afresh: its first lines are full again.
        throttled.warning("refused releases of model m", "signature", "SECURITY: release m v%d refused", 9999)
        assert _messages(caplog)[-1] == "SECURITY: release m v9999 refused"


def _release(settings: Settings, version: int, key: bytes) -> dict[str, Any]:
    model = build_learner(LearnerSpec(name="logistic_regression"), "classification", 0)
    model.learn_one({"x": 1.0}, True)
    return build_release(
        model, name="default", version=version, parent=None, reason="manual", metrics={}, key=key, n_learned=1
    )


def test_a_scorer_refusing_3000_forged_releases_logs_a_few_lines_counts_all_and_leaks_no_secret(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    metrics = build_metrics(CollectorRegistry())
    follower = ReleaseFollower(settings, metrics)
    key = settings.model.signing_key.get().encode()
    forged = _release(settings, 7, b"an attacker's key, not the real one: 0123456789")
    # What the real key would have signed: an error that printed it would let anyone forge releases.
    expected_signature = sign(forged["header"], forged["artifact"], key)
    with caplog.at_level(logging.WARNING, logger="driftline.security"):
        for v in range(3000):
            record = dict(forged, version=v + 1)
            problem = verify_problem(record, key)
            assert problem is not None
            follower._reject("default", problem[0], f"release default v{v + 1} refused: {problem[1]}")
        follower.stop()  # never started: stop() writes the summary of what is pending
    lines = _messages(caplog)
    assert len(lines) == 6, "\n".join(lines)
    assert all(line.startswith("SECURITY: release default v") for line in lines[:5])
    assert "and 2,995 more refused releases of model default" in lines[5] and "reason signature" in lines[5]
    counted = metrics.registry.get_sample_value(
        "driftline_releases_rejected_total", {"model": "default", "reason": "signature"}
    )
    assert counted == 3000
    text = "\n".join(lines)
    assert key.decode() not in text and expected_signature not in text


def _unverified(version: int, offset: int) -> dict[str, Any]:
    return {
        "model": "default", "version": version, "verified": False, "current": False, "rejected": "signature",
        "error": "release default: signature mismatch", "models_partition": 0, "offset": offset, "metrics": {},
    }  # fmt: skip


def _genuine(version: int, current: bool) -> dict[str, Any]:
    return {
        "model": "default", "version": version, "parent": None, "reason": "manual", "created_at": 0,
        "n_learned": 1, "metrics": {}, "verified": True, "current": current,
    }  # fmt: skip


def test_models_list_sums_up_a_run_of_unverified_releases_in_one_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    rows = [_unverified(10_000 - i, 100 + i) for i in range(3000)] + [
        _genuine(2, True),
        _unverified(1, 5),
        _genuine(1, False),
    ]
    print_releases(rows)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 5, "\n".join(lines)  # header, the run, v2, the lone forgery, v1
    run = lines[1]
    assert "3,000 UNVERIFIED release records claiming v7001-v10000 (signature: 3,000)" in run, run
    assert "at offsets 100-3099" in run and "--json lists each" in run
    assert "UNVERIFIED (signature) at offset 5" in lines[3]
    assert lines[2].split()[0] == "2" and lines[2].rstrip().endswith("*")
    json.dumps(rows)  # --json prints these rows as they are: one object per record, offsets included


@pytest.mark.kafka
def test_a_restore_over_300_forged_changelog_records_logs_a_few_lines_and_counts_all(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    from connectors.topics import ensure_topics
    from tests.test_trainer_group import (
        TOPICS,
        _examples,
        _learned,
        _produce,
        _running,
        _send_examples,
        _wait,
    )

    ensure_topics(settings, TOPICS)
    _send_examples(settings, _examples(50))
    with _running(settings) as group:
        _wait(group, "50 learned", lambda: _learned(group) >= 50)
    _produce(settings, "changelog", [("default", b"\x00\xffgarbage %d" % i) for i in range(300)])
    _send_examples(settings, _examples(10, start=50))
    with caplog.at_level(logging.WARNING, logger="driftline.security"), _running(settings) as group:
        _wait(group, "the 10 new examples", lambda: _learned(group) >= 60)
        refused = group.metrics.registry.get_sample_value(
            "driftline_changelog_rejected_total", {"reason": "signature"}
        )
    assert refused == 300  # each one counted
    lines = [line for line in _messages(caplog) if "changelog" in line]
    assert len(lines) == 6, "\n".join(lines)
    assert "and 295 more refused" in lines[5] and "reason signature" in lines[5], lines[5]


@pytest.mark.kafka
def test_models_list_on_the_topic_names_a_flood_of_forgeries_in_one_line_and_json_lists_each(
    prefix: str, redis_url: str, tmp_path: Any
) -> None:
    from connectors.topics import ensure_topics
    from tests.pipeline_helpers import SIGNING_KEY, Pipeline

    pipeline = Pipeline(prefix, tmp_path, redis_url)
    settings = pipeline.settings()
    ensure_topics(settings, ("models",))
    genuine = _release(settings, 1, SIGNING_KEY.encode())
    forged = _release(settings, 1, b"an attacker's key, not the real one: 0123456789")
    with pipeline.producer() as producer:
        producer.send("models", "ModelRelease", genuine, "default")
        for v in range(2, 202):
            producer.send("models", "ModelRelease", dict(forged, version=v), "default")
    text = pipeline.cli("models", "list", "--model", "default").stdout
    lines = text.splitlines()
    assert len(lines) == 3, text  # header, the 200 forgeries, v1
    assert "200 UNVERIFIED release records claiming v2-v201 (signature: 200) at offsets 1-200" in lines[1], (
        text
    )
    rows = pipeline.cli_json("models", "list", "--model", "default", "--json")
    fakes = sorted((r["version"], r["offset"]) for r in rows if r["verified"] is False)
    assert fakes == [(v, v - 1) for v in range(2, 202)]


@pytest.mark.kafka
def test_a_trainer_refusing_300_forged_control_commands_logs_a_few_lines_and_counts_all(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    from connectors.topics import ensure_topics
    from schemas.codec import default_codec
    from streams.control import new_command
    from tests.test_trainer_group import (
        TOPICS,
        _examples,
        _learned,
        _produce,
        _running,
        _send_examples,
        _wait,
    )

    ensure_topics(settings, TOPICS)
    _send_examples(settings, _examples(20))
    with caplog.at_level(logging.WARNING, logger="driftline.security"), _running(settings) as group:
        _wait(group, "20 learned", lambda: _learned(group) >= 20)
        forged = [dict(new_command(settings, "pause_learning", {}), signature="00" * 32) for _ in range(300)]
        codec = default_codec()
        _produce(settings, "control", [("default", codec.encode("ControlCommand", r)) for r in forged])

        def refused() -> float:
            value = group.metrics.registry.get_sample_value(
                "driftline_control_refused_total", {"model": "default", "reason": "signature"}
            )
            return value or 0.0

        _wait(group, "300 refused", lambda: refused() >= 300)
        assert refused() == 300  # each one counted
        group.trainers["default"].security_log().flush(
            force=True
        )  # the minute's summary, without waiting it out
    lines = [line for line in _messages(caplog) if "control command" in line or "control commands" in line]
    assert len(lines) == 6, "\n".join(lines)
    assert "and 295 more refused control commands of model default" in lines[5], lines[5]


def test_forgeries_naming_thousands_of_models_are_throttled_too(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    """Review32: the scorer's follower reads every model's releases and throttles per model *the record claims*:
    3,000 forged releases naming 3,000 models were 3,000 full SECURITY lines (and 3,000 windows held for a minute).
    Past ``MAX_KINDS`` models the others share one window per reason; every refusal is still counted."""
    metrics = build_metrics(CollectorRegistry())
    follower = ReleaseFollower(settings, metrics)
    with caplog.at_level(logging.WARNING, logger="driftline.security"):
        for v in range(3000):
            follower._reject(f"m{v}", "signature", f"release m{v} v1 refused: signature mismatch")
        assert len(follower._security._windows) <= 25
        follower.stop()
    lines = _messages(caplog)
    assert len(lines) <= 2 * 5 * 25, len(lines)
    assert any("more refusals of further kinds" in line and "reason signature" in line for line in lines)
    assert metrics.registry.get_sample_value(
        "driftline_releases_rejected_total", {"model": "m2999", "reason": "signature"}
    )


@pytest.mark.kafka
def test_forged_releases_naming_new_models_share_one_metric_series(
    prefix: str, redis_url: str, tmp_path: Any
) -> None:
    """The ``model`` label of a record that did not verify is the forger's choice: 100 forgeries naming 100 models
    left 100 Prometheus series for good. A name with no verified release is counted as ``_unverified``; a forgery
    claiming a model the follower serves keeps that model's name."""
    from connectors.topics import ensure_topics
    from streams.releases import UNVERIFIED_MODEL
    from tests.pipeline_helpers import SIGNING_KEY, Pipeline

    pipeline = Pipeline(prefix, tmp_path, redis_url)
    settings = pipeline.settings()
    ensure_topics(settings, ("models",))
    forged = _release(settings, 1, b"an attacker's key, not the real one: 0123456789")
    metrics = build_metrics(CollectorRegistry())
    sample = "driftline_releases_rejected_total"

    def counted(model: str) -> float:
        return metrics.registry.get_sample_value(sample, {"model": model, "reason": "signature"}) or 0.0

    def wait(done: Any) -> None:
        deadline = time.monotonic() + 60
        while not done() and time.monotonic() < deadline:
            time.sleep(0.2)

    follower = ReleaseFollower(settings, metrics)
    with pipeline.producer() as producer:
        producer.send("models", "ModelRelease", _release(settings, 1, SIGNING_KEY.encode()), "default")
        for v in range(100):
            producer.send("models", "ModelRelease", dict(forged, model=f"m{v}", version=v + 2), f"m{v}")
    follower.start()
    try:
        wait(lambda: counted(UNVERIFIED_MODEL) >= 100 and follower.latest("default") is not None)
        with pipeline.producer() as producer:
            producer.send("models", "ModelRelease", dict(forged, version=500), "default")
        wait(lambda: counted("default") >= 1)
    finally:
        follower.stop()
    assert (counted(UNVERIFIED_MODEL), counted("default")) == (100, 1)
    assert metrics.registry.get_sample_value(sample, {"model": "m7", "reason": "signature"}) is None
