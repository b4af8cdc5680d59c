"""Worker faults on the shared stack (random topic prefix per test): kill -9 of each role at random points, the
trainer killed between learning and its checkpoint, a rebalance, SIGTERM drains, and a stalled scorer.

Each test publishes N keyed events and their labels while the fault is injected, then runs the oracle of
:mod:`tests.fault_helpers`: every event predicted, every label learned exactly once, releases equal to an
offline replay of the training topic, no dead letters. Seeds of the random fault points are printed
(``FAULT_SEED=... pytest ...`` replays one).
"""

from __future__ import annotations

import random
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fault_helpers import (
    FAST_GROUP_ENV,
    Publisher,
    check_run,
    kill9,
    make_events,
    retire,
    seed_for,
    wait_complete,
)
from tests.pipeline_helpers import Pipeline, running

pytestmark = [pytest.mark.faults, pytest.mark.kafka]

N = 2000
RATE = 400.0
# Small releases so a run crosses several release points (each compared with the offline replay).
ENV = {**FAST_GROUP_ENV, "DRIFTLINE__MODEL__RELEASE_EVERY": "300"}


@pytest.fixture
def pipeline(prefix: str, redis_url: str, tmp_path: Path) -> Iterator[Pipeline]:
    with running(Pipeline(prefix, tmp_path, redis_url, extra_env=dict(ENV))) as p:
        yield p


def _ids(events: list) -> set[str]:
    return {e.id for e in events}


@pytest.mark.parametrize("role", ["score", "join", "train"])
def test_kill9_at_random_points(pipeline: Pipeline, role: str) -> None:
    rng = random.Random(seed_for(f"kill9-{role}"))
    pipeline.start("score", "join", "train")
    events = make_events(N)
    publisher = Publisher(pipeline, events, rate=RATE)
    publisher.start()
    for fraction in sorted(rng.uniform(0.15, 0.85) for _ in range(2)):
        publisher.wait_sent(int(N * fraction))
        victim = next(w for w in pipeline.workers if w.role == role and w.alive())
        kill9(pipeline, victim)
        time.sleep(rng.uniform(0.0, 1.0))
        pipeline.start(role)
    publisher.finish()
    out = wait_complete(pipeline, events, _ids(events))
    compared = check_run(pipeline, out, events, _ids(events))
    assert compared >= 3
    pipeline.assert_alive()


def test_trainer_killed_between_learning_and_checkpoint(pipeline: Pipeline) -> None:
    """The trainer learns a batch and publishes its release, then cannot write the checkpoint (a directory sits
    where its temporary file goes) and retries; it is killed there. The restarted trainer restores the older
    checkpoint, learns the batch again and releases the same model under a new version: nothing learned twice."""
    pipeline.start("score", "join", "train")
    events = make_events(N)
    first, second = events[:700], events[700:]
    publisher = Publisher(pipeline, first, rate=2000.0, label_lag=0)
    publisher.start()
    publisher.finish()
    pipeline.wait_learned(len(first))
    releases_before = len(pipeline.releases())

    settings = pipeline.settings()
    ckpt = Path(settings.state_dir) / "checkpoints" / f"{settings.kafka.topic_prefix}{settings.model.name}.ckpt"
    assert ckpt.exists(), f"no checkpoint at {ckpt}"
    blocker = ckpt.with_suffix(".tmp")
    blocker.mkdir()
    try:
        publisher = Publisher(pipeline, second, rate=2000.0, label_lag=0)
        publisher.start()
        publisher.finish()
        # A release learned after the last checkpoint is on the topic while the checkpoint still fails.
        pipeline.wait_until(
            "a release after the failed checkpoint",
            lambda: len(pipeline.releases()) > releases_before,
            timeout=90,
        )
        trainer = next(w for w in pipeline.workers if w.role == "train")
        assert pipeline.trainer()["n_learned"] == len(first), "the trainer checkpointed past the blocker"
        assert "cannot write checkpoint" in trainer.log_tail(200)
        kill9(pipeline, trainer)
    finally:
        blocker.rmdir()
    pipeline.start("train")
    out = wait_complete(pipeline, events, _ids(events))
    check_run(pipeline, out, events, _ids(events))
    n_at_release = [int(r["metrics"]["n_learned"]) for r in out.releases if r["reason"] != "initial"]
    assert len(n_at_release) > len(set(n_at_release)), "no release was learned again after the crash"


def test_rebalance_second_scorer_joins_and_leaves(pipeline: Pipeline) -> None:
    rng = random.Random(seed_for("rebalance"))
    pipeline.start("score", "join", "train")
    events = make_events(N)
    publisher = Publisher(pipeline, events, rate=RATE)
    publisher.start()
    publisher.wait_sent(int(N * rng.uniform(0.1, 0.3)))
    (second,) = pipeline.start("score")
    publisher.wait_sent(int(N * rng.uniform(0.6, 0.8)))
    scored = pipeline.metric(second, "driftline_events_total", stage="score", outcome="ok")
    assert retire(pipeline, second) == 0, second.log_tail()
    publisher.finish()
    out = wait_complete(pipeline, events, _ids(events))
    check_run(pipeline, out, events, _ids(events))
    assert scored > 0, "the second scorer never got a partition"


@pytest.mark.parametrize("role", ["score", "join", "train"])
def test_sigterm_drains_and_commits(pipeline: Pipeline, role: str) -> None:
    """SIGTERM mid-stream: the worker exits 0, and its replacement does not process the stream again."""
    pipeline.start("score", "join", "train")
    events = make_events(N)
    publisher = Publisher(pipeline, events, rate=RATE)
    publisher.start()
    publisher.wait_sent(N // 2)
    victim = next(w for w in pipeline.workers if w.role == role)
    assert retire(pipeline, victim) == 0, f"{role} did not exit cleanly on SIGTERM:\n{victim.log_tail()}"
    (replacement,) = pipeline.start(role)
    publisher.finish()
    out = wait_complete(pipeline, events, _ids(events))
    check_run(pipeline, out, events, _ids(events))
    # Whatever the replacement did again shows up as duplicates downstream (or as offsets the trainer skips).
    redone = {
        "score": out.duplicate_predictions,
        "join": len(out.training) - len({t["id"] for t in out.training}),
        "train": pipeline.metric(replacement, "driftline_events_total", stage="train", outcome="skipped"),
    }[role]
    assert redone == 0, f"after a graceful stop the new {role} worker redid {redone} record(s)"


def test_scorer_stalled_past_max_poll_interval(pipeline: Pipeline) -> None:
    """A scorer whose processing blocks the event loop longer than ``max.poll.interval.ms`` (and the session
    timeout) loses its partitions to the other scorer; when it wakes up its uncommitted batch is redone
    elsewhere, it rejoins, and nothing is lost.

    Faust runs the stage on its event loop, so a slow model blocks the loop (heartbeats included) exactly like a
    stopped process: SIGSTOP stands in for the slow model, with the group timeouts made short.
    """
    pipeline.extra_env.update({"BROKER_MAX_POLL_INTERVAL": "8"})
    pipeline.start("score", "score", "join", "train")
    events = make_events(N)
    publisher = Publisher(pipeline, events, rate=RATE)
    publisher.start()
    publisher.wait_sent(N // 4)
    stalled = pipeline.workers[0]
    stalled.signal(signal.SIGSTOP)
    try:
        time.sleep(15)  # > session timeout (8 s) and > max poll interval (8 s)
    finally:
        stalled.signal(signal.SIGCONT)
    publisher.finish()
    out = wait_complete(pipeline, events, _ids(events))
    check_run(pipeline, out, events, _ids(events))
    pipeline.assert_alive()
    # The woken scorer is a member again: it serves a share of what is published afterwards.
    before = pipeline.metric(stalled, "driftline_events_total", stage="score", outcome="ok")
    more = make_events(400, start=N)
    publisher = Publisher(pipeline, more, rate=2000.0)
    publisher.start()
    publisher.finish()
    everything = events + more
    wait_complete(pipeline, everything, _ids(everything))
    assert pipeline.metric(stalled, "driftline_events_total", stage="score", outcome="ok") > before
