"""``model.explain`` on the real local stack: each Prediction carries its explanation, and ``driftline explain ID``
finds it by id; a prediction recorded without one is explained from the verified release that served it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from schemas.codec import default_codec
from tests.pipeline_helpers import Pipeline, running
from tests.test_pipeline_control import send

pytestmark = pytest.mark.kafka


def test_predictions_carry_explanations_and_explain_finds_them(
    prefix: str, redis_url: str, tmp_path: Path
) -> None:
    env = {
        "DRIFTLINE__MODEL__EXPLAIN": "true",
        "DRIFTLINE__MODEL__RELEASE_EVERY": "50",
        "DRIFTLINE__MODEL__LEARNER__NAME": "logistic_regression",  # not the auto pool: a known method
    }
    pipeline = Pipeline(prefix, tmp_path, redis_url, extra_env=env)
    with running(pipeline):
        pipeline.start("all")
        send(pipeline, 0, 300)
        pipeline.wait_learned(300)
        # Released by the trainer is not yet served: wait for the scorer's gauge, or c1019 may get version 1.
        pipeline.wait_until(
            "a trained version served",
            lambda: pipeline.metric_sum("driftline_served_model_version", model="default") > 1,
            timeout=60,
        )
        send(pipeline, 1000, 20)  # scored by a model that has learned (a > 0.5 decides)

        def scored() -> dict | None:
            return next(
                (p for p in pipeline.values("predictions") if p["id"] == "c1019" and p["version"] > 1), None
            )

        pred = pipeline.wait_until("c1019 scored by a trained version", scored, timeout=60)
    assert pred["explanation_method"] == "linear_contribution"
    contributions = pred["explanation"]
    assert set(contributions) == {"a", "b", "_intercept"}
    assert abs(contributions["a"]) > abs(contributions["b"])

    result = json.loads(pipeline.cli("explain", "c1019", "--json").stdout)
    assert result["source"] == "recorded at scoring time"
    assert result["contributions"] == contributions and result["version"] == pred["version"]
    text = pipeline.cli("explain", "c1019").stdout
    assert "linear_contribution" in text and text.index("  a ") < text.index("  b ")

    # A prediction without a recorded explanation (a scorer with model.explain off wrote it): recomputed.
    bare = {**pred, "id": "bare-1", "explanation": None, "explanation_method": None}
    pipeline.send_raw("predictions", [default_codec().encode("Prediction", bare)], key=b"bare-1")
    result = json.loads(pipeline.cli("explain", "bare-1", "--json").stdout)
    assert result["source"].startswith(f"recomputed from the verified release v{pred['version']}")
    assert result["contributions"] == pytest.approx(contributions, rel=1e-9)

    missing = pipeline.cli("explain", "no-such-id", "--timeout", "10", check=False)
    assert missing.returncode == 1 and "no prediction with id 'no-such-id'" in missing.stderr
