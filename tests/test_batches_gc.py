"""The score worker's batch loop and the cyclic collector (streams/batches.py ``young_collections``), in process.

What must hold: while the score stage's loop runs, the young generation is collected every ``SCORE_GC_YOUNG``
allocations (not 700) and what was alive at its start is frozen; the threshold is put back afterwards unless
someone else changed it meanwhile; and the score stage asks for it (the p99 at half the maximum rate, session 22).
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest

from driftline.settings import load_settings
from streams import app as app_module
from streams.batches import SCORE_GC_YOUNG, young_collections


@pytest.fixture
def collector() -> Iterator[None]:
    before = gc.get_threshold()
    try:
        yield
    finally:
        gc.set_threshold(*before)
        gc.unfreeze()


def test_young_collections_sets_the_threshold_freezes_and_puts_it_back(collector: None) -> None:
    gc.set_threshold(700, 10, 10)
    gc.unfreeze()
    alive = [[] for _ in range(1000)]  # containers alive before: frozen with the rest
    restore = young_collections(5_000)
    assert gc.get_threshold() == (5_000, 10, 10)
    assert gc.get_freeze_count() >= len(alive)
    restore()
    assert gc.get_threshold() == (700, 10, 10)


def test_young_collections_leaves_a_threshold_someone_else_set(collector: None) -> None:
    gc.set_threshold(700, 10, 10)
    restore = young_collections(5_000)
    gc.set_threshold(2_000, 10, 10)  # e.g. another stage of an all-in-one worker
    restore()
    assert gc.get_threshold() == (2_000, 10, 10)


def test_the_score_stage_runs_its_batch_loop_with_young_collections(monkeypatch: pytest.MonkeyPatch) -> None:
    options: dict[str, Any] = {}

    def start_batches(worker: Any, stage: str, topic: str, group: str, handle: Any, **opts: Any) -> None:
        options.update(opts, stage=stage)

    monkeypatch.setattr(app_module, "_start_batches", start_batches)
    ctx = SimpleNamespace(settings=load_settings(environ={}), model="m", out=None)
    worker = SimpleNamespace(
        ctx=ctx,
        store=SimpleNamespace(mark_joined=None),
        follower=SimpleNamespace(first_loaded=threading.Event()),
    )
    scorer = SimpleNamespace(process=None, after_delivery=None, finish=None, idle=None)
    app_module._add_score_batches(worker, scorer)  # type: ignore[arg-type]
    assert options["stage"] == "score"
    assert options["gc_young"] == SCORE_GC_YOUNG > 700
