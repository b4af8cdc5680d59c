"""What ``model.explain`` costs the scorer: explaining a prediction against making it, in-process, same model.

The scorer with ``model.explain`` on calls :func:`learners.explain.explain_one` once per event after
``predict_with_proba``; with it off it pays one local boolean test per event. So the cost per event is the
``explain_us`` measured here (plus encoding the map into the Prediction, not measured).
"""

from __future__ import annotations

import time
from typing import Any

from bench.data import Row
from driftline.config import LearnerSpec
from learners.explain import explain_one
from learners.specs import build_learner


def explain_cost(spec: LearnerSpec, train: list[Row], rows: list[Row]) -> dict[str, Any]:
    """``predict_us`` (driftline's ``predict_with_proba``) and ``explain_us`` per event, and their ratio."""
    model = build_learner(spec)
    for _, x, y in train:
        model.learn_one(x, y)
    t0 = time.perf_counter()
    predictions = [model.predict_with_proba(x)[0] for _, x, _ in rows]
    predict_s = time.perf_counter() - t0
    method = "none"
    t0 = time.perf_counter()
    for (_, x, _), pred in zip(rows, predictions, strict=True):
        method, _ = explain_one(model, x, pred)  # as the scorer calls it, with the prediction it made
    explain_s = time.perf_counter() - t0
    n = max(1, len(rows))
    return {
        "explain_method": method,
        "predict_us": predict_s / n * 1e6,
        "explain_us": explain_s / n * 1e6,
        "explain_vs_predict": explain_s / predict_s if predict_s > 0 else None,
    }
