"""Separate role processes: two scorers share the partitions of ``features`` and end on the same version."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.pipeline_helpers import Pipeline, distinct_ids, running

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

EVENTS = 2000


@pytest.fixture
def pipeline(prefix: str, redis_url: str, tmp_path: Path) -> Pipeline:
    return Pipeline(prefix, tmp_path, redis_url)


def test_two_scorers_share_features_and_serve_the_same_version(pipeline: Pipeline) -> None:
    assert pipeline.settings().kafka.partitions == 4
    with running(pipeline):
        scorers = pipeline.start("score", "score")
        pipeline.start("join", "train")
        # Spread over ~10 s so the two scorers' group has settled on two partitions each while events flow;
        # the default release_every (1000) releases twice more while the scorers run.
        summary = pipeline.produce_synthetic("sea", EVENTS, seed=5, label_delay=100, rate=200)
        assert summary["features"] == EVENTS and summary["labels"] == EVENTS

        pipeline.wait_until(
            "every event scored by the two scorers",
            lambda: pipeline.metric_sum("driftline_events_total", stage="score", outcome="ok") >= EVENTS,
            timeout=90,
        )
        pipeline.wait_learned(EVENTS, timeout=90)

        predictions = pipeline.values("predictions")
        assert distinct_ids(predictions) == {str(i) for i in range(EVENTS)}

        # Both processes scored a share of the stream (the group split the 4 partitions between them).
        shares = [pipeline.metric(s, "driftline_events_total", stage="score", outcome="ok") for s in scorers]
        assert all(share > 0 for share in shares), f"one scorer got no partition: scored {shares}"

        # Both end on the newest release, which was published while they were running.
        releases = pipeline.releases()
        latest = int(releases[-1]["version"])
        assert latest >= 3, f"expected releases after the initial one: {[r['reason'] for r in releases]}"
        served = pipeline.wait_until(
            f"both scorers serving v{latest}",
            lambda: (
                (
                    v := [
                        pipeline.metric(s, "driftline_served_model_version", model="default") for s in scorers
                    ]
                )
                and all(x == latest for x in v)
                and v
            ),
            timeout=30,
        )
        assert served == [latest, latest]
        pipeline.assert_alive()
