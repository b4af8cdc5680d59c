"""bench/staleness.py's arithmetic, on records made up here (no broker): which release learned a label, when a
version counts as served, and which labels are left out."""

from __future__ import annotations

from typing import Any

from bench.staleness import stage_times


def _release(version: int, n_learned: int, created_at: int, reason: str = "incremental") -> dict[str, Any]:
    return {
        "version": version,
        "reason": reason,
        "created_at": created_at,
        "metrics": {"n_learned": n_learned},
    }


def test_a_release_never_served_counts_from_the_first_prediction_of_a_newer_version() -> None:
    # v2 learned a, b; v3 learned c, d; both built in one transaction (visible together), only v3 was served.
    labels = {"a": 0, "b": 10, "c": 20, "d": 30}
    training = [("a", 5), ("b", 15), ("c", 25), ("d", 35)]
    releases = [_release(1, 0, 0, "initial"), _release(2, 2, 40), _release(3, 4, 45)]
    out = stage_times(labels, training, releases, [(1, 1), (3, 100)], {2: 60, 3: 60})
    assert out["measured"] == 4
    assert out["total_p95_ms"] == 100.0  # label a: produced at 0, first served by v3 at 100
    assert out["swap_p50_ms"] == 40.0  # visible at 60, served at 100


def test_labels_of_a_release_never_served_are_left_out_and_duplicates_count_once() -> None:
    labels = {"a": 0, "b": 10, "c": 20}
    training = [("a", 5), ("a", 6), ("b", 15), ("c", 25)]  # a joined twice: the trainer learns it once
    releases = [_release(2, 2, 40), _release(3, 3, 90)]
    out = stage_times(labels, training, releases, [(2, 70)], {2: 50, 3: 95})
    assert out["labels"] == 3
    assert out["measured"] == 2  # c was learned only by v3, which no prediction used
    assert out["learn_trigger_p50_ms"] == 25.0  # b completed v2: joined at 15, built at 40
