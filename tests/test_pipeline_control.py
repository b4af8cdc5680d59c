"""Control commands through the CLI against a running worker: pause/resume, set, rollback, promote; and
``driftline tail`` / ``driftline models list`` against the running system."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest

from streams.train import Checkpoint
from tests.pipeline_helpers import SIGNING_KEY, Pipeline, running

pytestmark = pytest.mark.kafka


def make(prefix: str, redis_url: str, tmp_path: Path, **env: str) -> Pipeline:
    return Pipeline(prefix, tmp_path, redis_url, extra_env=env)


def send(pipeline: Pipeline, start: int, n: int, seed: int = 0) -> None:
    """Events ``c<start>..`` with their labels right after (one concept: a > 0.5)."""
    rng = random.Random(seed + start)
    rows = [(f"c{i}", {"a": rng.random(), "b": rng.random()}) for i in range(start, start + n)]
    with pipeline.producer() as producer:
        for id_, x in rows:
            producer.send_feature(id_, x)
        for id_, x in rows:
            producer.send_label(id_, int(x["a"] > 0.5))


def trained(pipeline: Pipeline) -> float:
    return pipeline.metric_sum("driftline_events_total", stage="train", outcome="ok")


def audit(pipeline: Pipeline) -> list[dict[str, Any]]:
    path = pipeline.state_dir / "audit" / f"{pipeline.prefix}default.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def controls(pipeline: Pipeline, command: str) -> list[dict[str, Any]]:
    return [a for a in audit(pipeline) if a["kind"] == "control" and a["command"] == command]


def dead_letters_saying(pipeline: Pipeline, word: str) -> list[dict[str, Any]]:
    """Every dead letter, once one of them mentions ``word`` (else an empty list)."""
    letters = pipeline.values("deadletter")
    return letters if any(word in d["error"] for d in letters) else []


def checkpoint(pipeline: Pipeline) -> dict[str, Any]:
    path = pipeline.state_dir / "checkpoints" / f"{pipeline.prefix}default.ckpt"
    state = Checkpoint(path, SIGNING_KEY.encode()).load()
    assert state is not None, f"no trainer checkpoint at {path}"
    return state


def test_pause_resume_and_set_take_effect_and_a_bad_set_is_refused(
    prefix: str, redis_url: str, tmp_path: Path
) -> None:
    pipeline = make(prefix, redis_url, tmp_path)
    with running(pipeline):
        pipeline.start("all")
        send(pipeline, 0, 200)
        pipeline.wait_learned(200)

        pipeline.cli("models", "pause")
        pipeline.wait_until("learning paused", lambda: pipeline.trainer().get("paused"), timeout=30)
        assert pipeline.metric_sum("driftline_learning_paused", model="default") == 1
        send(pipeline, 200, 200)
        # Labels keep flowing through join and train, but nothing is learned.
        pipeline.wait_until("400 training examples handled", lambda: trained(pipeline) >= 400, timeout=60)
        assert pipeline.trainer()["n_learned"] == 200

        pipeline.cli("models", "resume")
        pipeline.wait_until(
            "learning resumed", lambda: not pipeline.trainer().get("paused", True), timeout=30
        )
        send(pipeline, 400, 100)
        pipeline.wait_learned(300)
        pipeline.wait_until("500 training examples handled", lambda: trained(pipeline) >= 500, timeout=60)
        assert pipeline.trainer()["n_learned"] == 300

        pipeline.cli("models", "set", "guard.alpha=0.01")
        pipeline.cli("models", "set", "guard.alpha=nan")  # refused: dead-lettered, the old value stays
        pipeline.wait_until("both sets audited", lambda: len(controls(pipeline, "set")) == 2, timeout=30)
        good, bad = controls(pipeline, "set")
        assert good["outcome"] == "ok" and good["args"] == {"guard.alpha": "0.01"}
        assert bad["args"] == {"guard.alpha": "nan"} and bad["outcome"].startswith("refused"), bad
        letters = pipeline.wait_until(
            "the refused set dead-lettered", lambda: dead_letters_saying(pipeline, "guard.alpha"), timeout=30
        )
        assert len(letters) == 1 and letters[0]["source_topic"] == f"{pipeline.prefix}control"
        assert [c["outcome"] for c in controls(pipeline, "pause_learning")] == ["ok"]
        assert [c["outcome"] for c in controls(pipeline, "resume_learning")] == ["ok"]
        # Applied to the live lifecycle (the trainer's checkpoint holds it).
        pipeline.wait_until(
            "guard.alpha=0.01 in the trainer", lambda: checkpoint(pipeline)["lifecycle"].guard.alpha == 0.01
        )
        pipeline.assert_alive()


def test_rollback_promote_tail_and_list_against_the_running_system(
    prefix: str, redis_url: str, tmp_path: Path
) -> None:
    # Small release_every: v2 after the cold start (50 labels) and v3 at 150, inside v2's probation window.
    pipeline = make(prefix, redis_url, tmp_path, DRIFTLINE__MODEL__RELEASE_EVERY="100")
    with running(pipeline):
        (worker,) = pipeline.start("all")
        send(pipeline, 0, 200)
        pipeline.wait_learned(200)
        releases = pipeline.wait_releases(3)
        assert [r["reason"] for r in releases] == ["initial", "incremental", "incremental"]

        # rollback: a new release whose model is the previous version's.
        pipeline.cli("models", "rollback")
        releases = pipeline.wait_releases(4)
        rollback = releases[-1]
        assert (rollback["version"], rollback["reason"], rollback["parent"]) == (4, "rollback", 2)
        previous, restored = pipeline.load_model(releases[1]), pipeline.load_model(rollback)
        rng = random.Random(9)
        probe = [{"a": rng.random(), "b": rng.random()} for _ in range(200)]
        assert [restored.predict_with_proba(x) for x in probe] == [
            previous.predict_with_proba(x) for x in probe
        ]
        pipeline.wait_until(
            "scorer serving the rollback",
            lambda: pipeline.metric(worker, "driftline_served_model_version", model="default") == 4,
            timeout=30,
        )

        # promote of a candidate that does not exist: refused and dead-lettered, nothing released.
        pipeline.cli("models", "promote", "held")
        pipeline.cli("models", "promote", "999")
        pipeline.wait_until(
            "both promotes audited", lambda: len(controls(pipeline, "promote")) == 2, timeout=30
        )
        held, unknown = controls(pipeline, "promote")
        assert held["outcome"].startswith("refused"), held
        letters = pipeline.wait_until(
            "the refused promote dead-lettered", lambda: dead_letters_saying(pipeline, "held"), timeout=30
        )
        pipeline.assert_alive()
        # The trainer goes on learning.
        send(pipeline, 200, 50)
        pipeline.wait_until("250 training examples handled", lambda: trained(pipeline) >= 250, timeout=60)

        # driftline models list --json and tail, against what is running.
        rows = pipeline.cli_json("models", "list", "--json")
        assert [r["version"] for r in rows] == sorted(
            (int(r["version"]) for r in pipeline.releases()), reverse=True
        )
        assert [r["version"] for r in rows if r["current"]] == [rows[0]["version"]]
        tail = pipeline.cli_json("tail", "predictions", "-n", "5", "--json")
        assert len(tail) == 5 and all(t["value"]["id"].startswith("c") for t in tail)
        assert {t["value"]["id"] for t in tail} <= {f"c{i}" for i in range(250)}
        models = pipeline.cli_json("tail", "models", "-n", "2", "--json")
        assert [m["value"]["version"] for m in models][-1] == rows[0]["version"]
        assert all("artifact" not in m["value"] or m["value"]["artifact"] is None for m in models)
        text = pipeline.cli("tail", "deadletter").stdout
        assert "held" in text

        # An unknown version number must be refused too, not answered with some other release.
        assert unknown["args"] == {"version": "999"}
        assert unknown["outcome"].startswith("refused"), (
            f"promote 999 (no such version) was applied: {unknown}; releases "
            f"{[(r['version'], r['reason']) for r in pipeline.releases()]}"
        )
        assert len(letters) == 2 and any("999" in d["error"] for d in letters), letters
