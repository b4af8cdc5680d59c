"""``examples/``: a user's own producer, consumer and kcat one-liners, against the real local stack and a worker.

The examples must not import driftline (checked on their source), and what the consumer decodes with fastavro
and the ``.avsc`` files alone must equal what driftline's own codec reads from the same topic.
"""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from connectors.topics import ALL_TOPICS
from tests.pipeline_helpers import KAFKA_BOOTSTRAP, Pipeline, running

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
OWN_PACKAGES = {"driftline", "streams", "connectors", "schemas", "learners", "bench", "tests"}
EVENTS = 60


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_examples_use_no_driftline_code() -> None:
    scripts = sorted(EXAMPLES.glob("*.py"))
    assert {p.name for p in scripts} == {"produce_json.py", "consume_predictions.py"}
    for script in scripts:
        assert not _imports(script) & OWN_PACKAGES, script.name
    assert "fastavro" in _imports(EXAMPLES / "consume_predictions.py")


def _example(
    name: str, *args: str, timeout: float = 120, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    # -I: isolated mode, so PYTHONPATH (which points at this tree in development) is not on the path.
    cmd = [sys.executable, "-I", str(EXAMPLES / name), *args]
    environ = {k: v for k, v in os.environ.items() if not k.startswith("DRIFTLINE")} | (env or {})
    done = subprocess.run(
        cmd, capture_output=True, text=True, timeout=timeout, check=False, cwd=EXAMPLES, env=environ
    )
    assert done.returncode == 0, f"{name} exited {done.returncode}:\n{done.stderr[-3000:]}"
    return done


@pytest.mark.parametrize("name", ["produce_json.py", "consume_predictions.py"])
def test_examples_default_to_the_environment_driftline_reads(name: str) -> None:
    # A user who exported DRIFTLINE_KAFKA_BOOTSTRAP / DRIFTLINE_TOPIC_PREFIX for driftline runs the examples as
    # examples/README.md shows them, without flags: they must talk to that broker and prefix, not 9092/driftline.
    env = {"DRIFTLINE_KAFKA_BOOTSTRAP": "10.1.2.3:19999", "DRIFTLINE_TOPIC_PREFIX": "trial7."}
    shown = " ".join(_example(name, "--help", env=env).stdout.split())
    assert "10.1.2.3:19999" in shown and "trial7." in shown
    plain = " ".join(_example(name, "--help").stdout.split())
    assert "127.0.0.1:9092" in plain and "driftline." in plain


@pytest.mark.kafka
@pytest.mark.slow
def test_producer_and_consumer_examples_against_a_worker(prefix: str, redis_url: str, tmp_path: Path) -> None:
    # Releases every 20 labels, so the second batch is scored by a model that has learned the first.
    pipeline = Pipeline(prefix, tmp_path, redis_url, extra_env={"DRIFTLINE__MODEL__RELEASE_EVERY": "20"})
    with running(pipeline):
        pipeline.start("all")
        # The broker and prefix as flags (seed 1), then from the environment driftline itself reads (seed 2).
        by_env = {"DRIFTLINE_KAFKA_BOOTSTRAP": KAFKA_BOOTSTRAP, "DRIFTLINE_TOPIC_PREFIX": prefix}
        for seed in (1, 2):
            where = ("--bootstrap", KAFKA_BOOTSTRAP, "--prefix", prefix) if seed == 1 else ()
            out = _example(
                "produce_json.py", *where, "--events", str(EVENTS), "--seed", str(seed),
                env=by_env if seed == 2 else None,
            )  # fmt: skip
            assert json.loads(out.stdout) == {"features": EVENTS, "labels": EVENTS, "prefix": prefix}
            # The JSON labels were accepted, joined and learned.
            pipeline.wait_learned(EVENTS * seed)
            if seed == 1:  # released, then served: the scorer's gauge, or the first events may still get v1
                pipeline.wait_releases(2)
                pipeline.wait_until(
                    "v2 or later served",
                    lambda: pipeline.metric_sum("driftline_served_model_version", model="default") >= 2,
                    timeout=60,
                )
        out = _example("consume_predictions.py", "--max", str(2 * EVENTS), "--timeout", "60", env=by_env)
    mine = [json.loads(line) for line in out.stdout.splitlines()]
    assert "skipped" not in out.stderr
    assert sorted(p["id"] for p in mine) == sorted(f"ex-{s}-{i}" for s in (1, 2) for i in range(EVENTS))

    # The same records as driftline's own codec reads them.
    theirs = {p["id"]: p for p in pipeline.values("predictions")}
    for p in mine:
        ref = theirs[p["id"]]
        assert (p["model"], p["version"], p["prediction"], p["proba"]) == (
            ref["model"],
            ref["version"],
            ref["prediction"],
            ref["proba"],
        )
    second = [p for p in mine if p["id"].startswith("ex-2-")]
    assert all(p["version"] >= 2 and isinstance(p["prediction"], bool) for p in second)
    assert all(len(p["proba"]) == 2 and abs(sum(p["proba"].values()) - 1) < 1e-6 for p in second)


def _kcat_block() -> str:
    text = (EXAMPLES / "README.md").read_text()
    match = re.search(r"With \[kcat\].*?```sh\n(.*?)```", text, re.S)
    assert match, "examples/README.md: no kcat block"
    return match.group(1)


@pytest.mark.kafka
def test_kcat_one_liners_of_the_examples_readme(prefix: str, redis_url: str, tmp_path: Path) -> None:
    # The done-criterion: right after `driftline stack up`, kcat's JSON event is accepted and
    # `driftline tail features` reads it back. (The shared stack is up already: `stack up` reuses it.)
    pipeline = Pipeline(prefix, tmp_path, redis_url)
    up = json.loads(pipeline.cli("stack", "up", "--json").stdout)
    assert up["kafka"]["note"] == "reusing it" and sorted(up["topics"]["created"]) == sorted(ALL_TOPICS)
    script = _kcat_block().replace("driftline\\.", re.escape(prefix)).replace("driftline.", prefix)
    # The README's broker address is the default one: point kcat at the test's broker (DRIFTLINE_TEST_KAFKA),
    # or a run beside another stack sends to, and fails on, that stack's broker.
    script = script.replace("127.0.0.1:9092", KAFKA_BOOTSTRAP)
    assert prefix in script and KAFKA_BOOTSTRAP in script
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert f'topic "{prefix}features"' in done.stdout and f'topic "{prefix}audit"' in done.stdout

    tail = pipeline.cli("tail", "features", "--json").stdout.splitlines()
    assert len(tail) == 1 and json.loads(tail[0])["value"]["features"] == {"x": 1.5, "country": "fr"}
    (event,) = pipeline.values("features")
    assert (event["id"], event["key"], event["features"]) == ("e1", "u1", {"x": 1.5, "country": "fr"})
    # Optional in JSON: the message's Kafka timestamp, the same for every reader (it was each reader's clock).
    shown = json.loads(tail[0])
    again = json.loads(pipeline.cli("tail", "features", "--json").stdout.splitlines()[0])
    assert event["ts"] == shown["value"]["ts"] == shown["timestamp"] == again["value"]["ts"] > 0
    (label,) = pipeline.values("labels")
    assert (label["id"], label["label"]) == ("e1", True)
