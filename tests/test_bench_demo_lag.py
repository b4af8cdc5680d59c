"""bench/demo_lag.py's arithmetic, on records made up here (no broker): the parts of each answered event's lag add
up to how far behind its served version was, and the segments' taxes add up to the run's."""

from __future__ import annotations

import json
from typing import Any

from bench.demo_lag import Answered, lag_parts, summary


def _release(version: int, index: int, created_at: int) -> tuple[dict[str, Any], int]:
    decision = json.dumps({"index": index}) if version > 1 else ""
    value = {
        "version": version,
        "created_at": created_at,
        "decision": decision,
        "metrics": {"n_learned": 0.0},
    }
    return value, created_at


def _example(k: int, version: int, prediction: Any, label_ts: int, joined: int) -> tuple[dict[str, Any], int]:
    value = {"id": str(k), "version": version, "prediction": prediction, "label": True, "event_ts": 10 * k,
             "label_ts": label_ts}  # fmt: skip
    return value, joined


def test_each_events_lag_splits_into_label_delay_join_trainer_and_release_to_scorer() -> None:
    # Event k at 10k ms, scored 5 ms later; its label published 2 events late (10k + 20) and joined 2 ms after,
    # but event 3's label is joined late (at 70). v2 (index 1) is decided at 33, v3 (index 3) at 75.
    models = [_release(1, 0, 0), _release(2, 1, 33), _release(3, 3, 75)]
    served = {0: (1, None), 1: (1, None), 2: (1, None), 3: (1, None), 4: (2, True), 5: (2, False),
              6: (2, True), 7: (2, True), 8: (3, True)}  # fmt: skip
    training = [
        _example(k, version, prediction, 10 * k + 20, 70 if k == 3 else 10 * k + 22)
        for k, (version, prediction) in served.items()
    ]
    predictions = [({"id": str(k), "scored_at": 10 * k + 5}, 10 * k + 5) for k in served]
    answered, cold_end, rows = lag_parts(models, training, predictions)
    assert cold_end == 3 and [r["id"] for r in rows] == [str(k) for k in served]
    parts = {a.k: a.parts for a in answered}
    assert parts[4] == (1, 0, 2, 0)  # at 45: labels 0-2 published and joined, v2 (index 1) decided and served
    assert parts[5] == (1, 1, 2, 0)  # at 55: label 3 published, not joined
    assert parts[6] == (1, 1, 3, 0)  # at 65: label 4 joined, label 3 still not
    assert parts[7] == (1, 0, 3, 2)  # at 75: v3 (index 3) decided, the scorer still serves v2
    assert parts[8] == (1, 0, 4, 0)  # at 85: v3 served
    index = {1: 1, 2: 1, 3: 3}
    for a in answered:  # the parts add up to how far behind the served version was
        assert sum(a.parts) == a.k - index[served[a.k][0]]
    assert [a.right for a in answered] == [True, False, True, True, True]


def test_the_segments_taxes_add_up_to_the_runs() -> None:
    answered = [Answered(k, (300, 2, 50, 0), right=k % 3 != 0) for k in range(10)]
    plain: list[bool | None] = [True] * 10
    out = summary(answered, plain, segment=4)
    assert out["guard_tax_pts"] == 40.0  # 4 of 10 wrong where the plain learner was right
    assert [s["from"] for s in out["segments"]] == [0, 4, 8]
    assert round(sum(s["tax_pts"] for s in out["segments"]), 2) == out["guard_tax_pts"]
    assert out["trainer"]["p50"] == 50.0 and out["total"]["mean"] == 352.0


def test_events_of_a_file_with_text_ids_are_ordered_by_event_time() -> None:
    models = [_release(1, 0, 0), _release(2, 1, 10)]
    training = [_example(k, 2, True, 10 * k + 20, 10 * k + 22) for k in range(3)]
    for (value, _), name in zip(training, ("c", "a", "b"), strict=True):
        value["id"] = f"evt-{name}"
    answered, _, rows = lag_parts(models, list(reversed(training)), [])
    assert [a.k for a in answered] == [0, 1, 2]
    assert [r["id"] for r in rows] == ["0", "1", "2"]
