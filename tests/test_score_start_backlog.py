"""A scorer started long after the last release serves the newest one from its first event (found from outside).

``models`` is compacted, but only closed segments are (``segment.ms`` is an hour), so a scorer that starts after a
busy hour reads hundreds of releases of one model before the newest. The scorer opens its ``features`` gate when
the follower says ``first_loaded``; that must mean the backlog up to the end at start has been read and its newest
verified release loaded, not merely that the first poll's newest release (v100 of 250) was.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from connectors.producer import EventProducer
from connectors.topics import ensure_topics
from driftline.config import LearnerSpec
from driftline.settings import Settings
from learners.artifacts import build_release
from learners.specs import build_learner
from streams.metrics import build_metrics
from streams.releases import ReleaseFollower

pytestmark = [pytest.mark.kafka]

MODEL = "default"


class Recorded(threading.Event):
    """An Event that records what the follower had loaded at the moment it was set."""

    def __init__(self, follower: ReleaseFollower) -> None:
        super().__init__()
        self.follower = follower
        self.loaded_then: dict[str, int] | None = None

    def set(self) -> None:
        if self.loaded_then is None:
            self.loaded_then = dict(self.follower._newest_loaded)
        super().set()


def releases(settings: Settings, n: int) -> list[dict[str, Any]]:
    model = build_learner(LearnerSpec(name="logistic_regression"), "classification", 0)
    model.learn_one({"x": 1.0}, True)
    key = settings.model.signing_key.get().encode()
    out = []
    for v in range(1, n + 1):
        parent = v - 1 if v > 1 else None
        release = build_release(
            model, name=MODEL, version=v, parent=parent, reason="incremental",
            metrics={"accuracy": 0.5}, key=key, n_learned=v,
        )  # fmt: skip
        out.append(release)
    return out


def test_the_follower_is_first_ready_with_the_newest_release_of_a_long_backlog(settings: Settings) -> None:
    ensure_topics(settings)
    with EventProducer(settings) as producer:
        for record in releases(settings, 250):
            producer.send("models", "ModelRelease", record, MODEL)

    follower = ReleaseFollower(settings, build_metrics(CollectorRegistry()))
    follower.first_loaded = ready = Recorded(follower)
    follower.start()
    try:
        assert ready.wait(60), "the follower never became ready"
        assert ready.loaded_then == {MODEL: 250}
        first = follower.take()
        assert first is not None and first.version == 250
    finally:
        follower.stop()
