"""``driftline --model M models show`` for a model with no release names the models there are, as ``models list``
and ``status`` do (found from outside, session 46, adv46: it said only "model 'nosuch' has no current release")."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from confluent_kafka import Producer

from connectors.topics import ensure_topics
from learners.artifacts import build_release
from schemas.codec import default_codec
from tests.conftest import KAFKA_BOOTSTRAP, REDIS_URL
from tests.test_explain import KEY, trained

pytestmark = pytest.mark.kafka


def test_models_show_of_a_model_with_no_release_names_the_models(
    prefix: str, settings: object, tmp_path: Path
) -> None:
    ensure_topics(settings)  # type: ignore[arg-type]
    release = build_release(
        trained("logistic_regression", "classification", 50), name="m1", version=1, parent=None,
        reason="initial", metrics={}, key=KEY.encode(), n_learned=50,
    )  # fmt: skip
    producer = Producer({"bootstrap.servers": KAFKA_BOOTSTRAP})
    producer.produce(f"{prefix}models", default_codec().encode("ModelRelease", release), b"m1")
    producer.flush(10)
    env = {**os.environ, "DRIFTLINE_KAFKA_BOOTSTRAP": KAFKA_BOOTSTRAP, "DRIFTLINE_SIGNING_KEY": KEY}
    env["DRIFTLINE_STATE_DIR"] = str(tmp_path)
    env["DRIFTLINE_REDIS_URL"] = REDIS_URL
    cmd = [
        sys.executable,
        "-m",
        "streams.cli",
        "--topic-prefix",
        prefix,
        "--model",
        "nosuch",
        "models",
        "show",
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 1 and done.stdout == ""
    assert "model 'nosuch' has no release" in done.stderr and "(models: m1; check --model)" in done.stderr
    shown = subprocess.run(
        [*cmd[:5], "--model", "m1", "models", "show"], capture_output=True, text=True, env=env
    )
    assert shown.returncode == 0 and "version 1" in shown.stdout, shown.stderr
