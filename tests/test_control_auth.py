"""Authenticated control (issue 12 part B): unsigned, wrongly signed, stale and replayed ControlCommands are refused
by the trainer, counted, dead-lettered once each and audited; the genuine ones are applied and audited with the key
id that signed them."""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
import time
from pathlib import Path
from typing import Any

import pytest

from driftline.settings import Secret
from streams.control import _canonical, key_id, new_command, operator_key
from tests.fault_helpers import running_all
from tests.pipeline_helpers import Pipeline

pytestmark = [pytest.mark.kafka]

KEY = "control-tests-signing-key-0123456789abcdef"
OPERATOR_KEY = "control-tests-operator-key-fedcba9876543210"


def audit(pipeline: Pipeline) -> list[dict[str, Any]]:
    path = pipeline.state_dir / "audit" / f"{pipeline.prefix}default.jsonl"
    lines = path.read_text().splitlines() if path.exists() else []
    return [a for a in map(json.loads, lines) if a["kind"] == "control"]


def refused(pipeline: Pipeline, reason: str) -> float:
    return pipeline.metric_sum("driftline_control_refused_total", model="default", reason=reason)


def test_unsigned_forged_stale_and_replayed_commands_are_refused_and_counted_once(
    prefix: str, redis_url: str, tmp_path: Path
) -> None:
    # A separate operator key: the trainer holds it, and the signing key alone does not sign commands.
    env = {"DRIFTLINE_SIGNING_KEY": KEY, "DRIFTLINE_OPERATOR_KEY": OPERATOR_KEY}
    with running_all(Pipeline(prefix, tmp_path, redis_url, extra_env=env)) as pipeline:
        pipeline.start("all")
        settings = pipeline.settings()

        # Genuine: signed by the CLI, applied, answered, audited with who signed it.
        assert "learning paused" in pipeline.cli("models", "pause").stdout
        assert "learning resumed" in pipeline.cli("models", "resume").stdout
        pause, resume = audit(pipeline)
        assert pause["outcome"] == resume["outcome"] == "ok"
        assert pause["signed_by"] == key_id(OPERATOR_KEY.encode())
        genuine_pause = next(r for r in pipeline.values("control") if r["command"] == "pause_learning")

        # 1. unsigned JSON (anyone who can write the topic)
        unsigned = {
            "model": "default",
            "command": "pause_learning",
            "args": {},
            "ts": int(time.time() * 1000),
        }
        pipeline.send_raw("control", [json.dumps(unsigned).encode()], b"default")
        # 2. signed with a key the trainer does not hold (the release signing key is not the operator key)
        signing_only = dataclasses.replace(
            settings, model=dataclasses.replace(settings.model, operator_key=Secret(""))
        )
        wrong_key = new_command(signing_only, "rollback", {})
        # 3. genuine but two hours old
        stale = new_command(settings, "pause_learning", {})
        stale["ts"] -= 2 * 3600 * 1000
        stale = new_command_resigned(settings, stale)
        # 4. the genuine pause, sent again byte for byte
        with pipeline.producer() as producer:
            for record in (wrong_key, stale, genuine_pause):
                producer.send("control", "ControlCommand", record, "default")

        for reason in ("unsigned", "signature", "stale", "replay"):
            pipeline.wait_until(f"{reason} refused", lambda r=reason: refused(pipeline, r) == 1, timeout=30)
        assert not pipeline.trainer()["paused"], "a refused command was applied"
        assert len(pipeline.values("models")) == 1, "the forged rollback released something"

        # Each refusal is audited, dead-lettered with its reason and counted once, in both counters.
        outcomes = [a["outcome"] for a in audit(pipeline)[2:]]
        assert len(outcomes) == 4 and all(o.startswith("refused") for o in outcomes), outcomes
        letters = pipeline.wait_until(
            "4 dead letters", lambda: len(pipeline.values("deadletter")) == 4 or None
        )
        errors = sorted(d["error"] for d in pipeline.values("deadletter"))
        for word in ("unsigned", "bad signature", "ago", "already seen"):
            assert any(word in e for e in errors), (word, errors)
        assert letters
        dead = pipeline.metric_sum("driftline_deadletters_total", stage="control")
        events = pipeline.metric_sum("driftline_events_total", stage="control", outcome="deadletter")
        assert dead == events == 4
        assert pipeline.metric_sum("driftline_events_total", stage="control", outcome="ok") == 2

        # The CLI without the operator key: the trainer's answer is a refusal, exit 1.
        env_wrong = dict(pipeline.env(), DRIFTLINE_OPERATOR_KEY="not-the-operator-key-0123456789abcdef")
        pipeline.extra_env.update(env_wrong)
        answer = pipeline.cli("models", "rollback", check=False)
        assert answer.returncode == 1 and "bad signature" in answer.stderr, answer.stderr
        pipeline.assert_alive()


def new_command_resigned(settings: Any, record: dict[str, Any]) -> dict[str, Any]:
    """Sign ``record`` again after changing it (as its key holder could)."""
    out = dict(record)
    out["signature"] = hmac.new(operator_key(settings), _canonical(out), hashlib.sha256).hexdigest()
    return out
