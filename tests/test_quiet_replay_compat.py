"""Quiet stretches' reference snapshot, made cheaper, decides exactly as before (issue 16, session 24).

``tests/golden/quiet_replay.json`` was written by the code before session 24's changes to the reference snapshot's
path (commit 78f5a02) with ``PYTHONPATH=<that tree> python tests/test_quiet_replay_compat.py --write``: for three
drifting streams replayed through a default lifecycle in quiet stretches (a Hoeffding tree through ``learn_batch``,
a logistic regression through ``learn_batch``, the ``auto`` pool through ``learn_one``), every drift alarm (signal,
detector, index and details, the reference snapshot's confirmed ones included), every release (version, parent,
reason, label), every guard decision (outcome, reason, candidate, label, failed checks) and the alarms the served
snapshot's errors refused. The current code must make the same ones, in the same order.
"""

from __future__ import annotations

import collections
import json
import sys
from pathlib import Path
from typing import Any

import pytest

GOLDEN = Path(__file__).with_name("golden") / "quiet_replay.json"
# (stream, learner, seed, events, label delay, batch size: 0 = learn_one)
CASES = (
    ("agrawal-abrupt", "hoeffding_tree", 1, 10_000, 50, 700),
    ("hyperplane-reversal", "logistic_regression", 2, 10_000, 50, 1000),
    ("stagger-abrupt", "auto", 5, 8_000, 50, 0),
)


def _canon(event: Any) -> dict[str, Any]:
    from learners.drift import DriftSignal
    from learners.guard import Decision
    from learners.lifecycle import Release

    def decision(d: Decision) -> dict[str, Any]:
        return {
            "outcome": d.outcome,
            "reason": d.reason,
            "candidate": d.candidate,
            # The checks that failed (the latency check is timed: the only clock here).
            "failed": sorted(k for k, v in d.checks.items() if v is not True and k != "latency"),
        }

    if isinstance(event, Release):
        out: dict[str, Any] = {
            "release": event.version,
            "parent": event.parent,
            "reason": event.reason,
            "index": event.index,
        }
        if event.decision is not None:
            out["decision"] = decision(event.decision)
        return out
    if isinstance(event, DriftSignal):
        return {
            "signal": event.signal,
            "detector": event.detector,
            "index": event.index,
            "details": event.details,
        }
    if isinstance(event, Decision):
        return {"decision": decision(event), "index": event.index}
    if isinstance(event, Exception):
        return {"error": type(event).__name__}
    raise AssertionError(f"unexpected event {event!r}")


def replay_case(name: str, kind: str, seed: int, n: int, delay: int, batch: int) -> dict[str, Any]:
    """The stream scored by the served model, each label ``delay`` events late, learned in batches of ``batch``
    (``learn_batch``, as the train worker) or one by one (``learn_one``, as ``driftline replay``)."""
    from bench.accuracy import make_stream
    from driftline.config import LearnerSpec
    from driftline.settings import Settings
    from learners.kernels import warm_for
    from learners.lifecycle import Labelled, ModelLifecycle

    s = Settings()
    spec = s.model.learner if kind == "auto" else LearnerSpec(kind)
    warm_for(spec)  # the compiled kernels, as the train worker has them (the tree's rows: learners.nb_kernel)
    lc = ModelLifecycle(
        "compat",
        "classification",
        spec,
        None,
        s.drift,
        s.guard,
        release_every=s.model.release_every,
        seed=seed,
    )
    events = [_canon(lc.initial_release())]
    rows = make_stream(name, n, seed)[0][:n]
    pending: collections.deque[Labelled] = collections.deque()
    queue: list[Labelled] = []

    def flush() -> None:
        if batch:
            results = lc.learn_batch(queue)
        else:
            results = []
            for e in queue:
                try:
                    results.append(
                        lc.learn_one(
                            e.x,
                            e.y,
                            served_prediction=e.served_prediction,
                            served_version=e.served_version,
                            served_proba=e.served_proba,
                            index=e.index,
                            ts=e.ts,
                        )
                    )
                except Exception as exc:  # (recorded, as learn_batch returns it)
                    results.append(exc)
        for r in results:
            events.extend([_canon(r)] if isinstance(r, Exception) else map(_canon, r))
        queue.clear()

    for i, (_rid, ts, x, y) in enumerate(rows):
        pred, proba = lc.served_model.predict_with_proba(x)
        wire = {str(k): v for k, v in proba.items()} or None
        pending.append(Labelled(x, y, pred, lc.served_version, wire, i, ts))
        if len(pending) > delay:
            queue.append(pending.popleft())
            if len(queue) >= max(batch, 1):
                flush()
    queue.extend(pending)
    flush()
    return {"events": events, "refused_alarms": lc.refused_alarms, "served_version": lc.served_version}


@pytest.mark.parametrize("case", CASES, ids=[f"{c[0]}-{c[1]}" for c in CASES])
def test_quiet_stretches_decide_as_before(case: tuple[Any, ...]) -> None:
    golden = json.loads(GOLDEN.read_text())[f"{case[0]}-{case[1]}"]
    got = json.loads(json.dumps(replay_case(*case)))
    # The stream exercises what changed: the reference snapshot's own alarms (confirmed ones), many releases.
    assert any(e.get("details", {}).get("snapshot") == "reference" for e in golden["events"])
    assert golden["served_version"] > 100
    for k, (g, e) in enumerate(zip(got["events"], golden["events"], strict=False)):
        assert g == e, f"event {k}"
    assert len(got["events"]) == len(golden["events"])
    assert got["refused_alarms"] == golden["refused_alarms"]
    assert got["served_version"] == golden["served_version"]


def test_the_reference_snapshot_of_a_tree_is_predicted_ahead(monkeypatch: pytest.MonkeyPatch) -> None:
    # Asked at every label for up to WATCH_LABELS labels, a frozen tree reference predicts the batch's rows ahead
    # (learners.frozen_tree.FrozenTreeRows), as a sentinel copy does; before session 24 it answered row by row.
    from bench.data import make_rows
    from driftline.config import LearnerSpec
    from driftline.settings import Settings
    from learners.batch import BatchContext
    from learners.kernels import warm_for
    from learners.lifecycle import Labelled, ModelLifecycle

    s = Settings()
    spec = LearnerSpec("hoeffding_tree")
    warm_for(spec)
    lc = ModelLifecycle("ahead", "classification", spec, None, s.drift, s.guard, release_every=25)
    lc.initial_release()
    asked: list[bool] = []
    predicted: list[int] = []
    frozen, tree_rows = BatchContext.frozen, BatchContext._tree_rows

    def spy_frozen(self: BatchContext, learner: Any, pos: int, xc: Any, ahead: bool = False) -> Any:
        watched = lc._watched
        if watched is not None and watched is not lc._served and learner is watched.model:
            asked.append(ahead)
        return frozen(self, learner, pos, xc, ahead)

    def spy_rows(self: BatchContext, rows: Any, lo: int, hi: int) -> Any:
        watched = lc._watched
        if watched is not None and rows.learner is watched.model:
            predicted.append(hi - lo)
        return tree_rows(self, rows, lo, hi)

    monkeypatch.setattr(BatchContext, "frozen", spy_frozen)
    monkeypatch.setattr(BatchContext, "_tree_rows", spy_rows)
    rows = make_rows(4000, seed=3)
    for k in range(0, len(rows), 1000):
        lc.learn_batch([Labelled(x, y, index=k + i) for i, (_, x, y) in enumerate(rows[k : k + 1000])])
    assert len(asked) > 2000 and all(asked)
    assert sum(predicted) > 2000


if __name__ == "__main__" and "--write" in sys.argv:
    parts = []
    for c in CASES:
        got = replay_case(*c)
        events = ",\n".join(json.dumps(e, sort_keys=True) for e in got.pop("events"))
        head = json.dumps(got, sort_keys=True)[:-1]
        parts.append(f'"{c[0]}-{c[1]}": {head}, "events": [\n{events}\n]}}')
    GOLDEN.write_text("{\n" + ",\n".join(parts) + "\n}\n")
