"""The restricted load's object cap walks the heap (``sys.getallocatedblocks``, ~300 us in a large process) once
per read after the first, which takes the base (session 38): the checks that can see what the load built stay."""

from __future__ import annotations

import pickle
import sys
import zlib
from itertools import islice

import pytest
from river.datasets import synth

from driftline.config import LearnerSpec
from driftline.errors import SecurityError
from learners import safe_pickle
from learners.specs import build_learner


def _walks(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    walks: list[int] = []
    real = sys.getallocatedblocks

    def counted() -> int:
        walks.append(1)
        return real()

    monkeypatch.setattr(safe_pickle.sys, "getallocatedblocks", counted)
    return walks


def test_a_logistic_regression_load_walks_the_heap_twice(monkeypatch: pytest.MonkeyPatch) -> None:
    learner = build_learner(LearnerSpec("logistic_regression", {}))
    rows = list(islice(synth.Agrawal(classification_function=2, seed=7), 220))
    for x, y in rows[:200]:
        learner.learn_one(x, y)
    payload = safe_pickle.dumps(learner)
    walks = _walks(monkeypatch)
    loaded = safe_pickle.loads(payload)
    # The base at the prefetch (before anything is built) and the check at the read that ends the load.
    assert len(walks) == 2
    assert [loaded.predict_proba_one(x) for x, _ in rows[200:]] == [
        learner.predict_proba_one(x) for x, _ in rows[200:]
    ]


def test_a_one_frame_flood_is_still_refused_at_the_end_of_its_load() -> None:
    raw = pickle.dumps([{} for _ in range(5_000)], protocol=5)  # ~10 KB: one frame, read before it is built
    assert raw.count(b"\x95") == 1
    with pytest.raises(SecurityError, match="allocated over 1000 objects"):
        safe_pickle.loads(zlib.compress(raw), max_objects=1_000)
    assert len(safe_pickle.loads(zlib.compress(raw))) == 5_000
