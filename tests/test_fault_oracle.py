"""The fault suites' oracle itself (tests/fault_helpers.py), without a broker: its offline replay must make the
trainer's decisions from the same data, whatever the machine's load."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest

import learners.guard as guard
from tests.fault_helpers import FAST_GROUP_ENV, FAULT_ENV, make_events, offline_models
from tests.pipeline_helpers import Pipeline


def _training(n: int) -> list[dict[str, Any]]:
    return [
        {"id": e.id, "model": "default", "features": e.features, "label": e.label} for e in make_events(n)
    ]


def _timings(monkeypatch: pytest.MonkeyPatch, slow: int | None) -> None:
    """The guard's latency measurements, without the wall clock: 0.01 ms each, except the ``slow``-th, 50 ms (a
    call preempted on a loaded machine, or caught in a garbage collection)."""
    calls = itertools.count(1)
    monkeypatch.setattr(guard, "_latency_ms", lambda model, xs: 50.0 if next(calls) == slow else 0.01)


@pytest.mark.parametrize(("env", "moved"), [(FAULT_ENV, False), (FAST_GROUP_ENV, True)])
def test_a_slow_prediction_does_not_move_the_offline_releases(
    env: dict[str, str], moved: bool, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """With FAULT_ENV (what the fault pipelines run with) one slow timing changes no decision; with the default
    latency budget it vetoes the cold start's second release and the next judgement comes 25 labels later, the
    offline schedule the flaky runs showed (n_learned 1, 27, 33, ... against the trainer's 1, 2, 3, ...)."""
    pipeline = Pipeline("t-oracle.", tmp_path, "redis://127.0.0.1:1/0", extra_env=dict(env))
    training = _training(200)
    _timings(monkeypatch, None)
    _, steady = offline_models(pipeline, training)
    _timings(monkeypatch, 2)
    refused: list[tuple[int, str, dict[str, Any]]] = []
    _, slowed = offline_models(pipeline, training, refused)
    assert sorted(steady)[:3] == [1, 2, 3]
    if moved:
        assert sorted(slowed)[:2] == [1, 27]
        assert refused == [(2, "reject", {"latency": "50.000 ms per prediction > budget 5.0 ms"})]
    else:
        assert sorted(slowed) == sorted(steady)
        assert refused == []
