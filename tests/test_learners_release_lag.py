"""The served snapshot's lag behind the champion (issue 13): incremental releases carry their evidence."""

from __future__ import annotations

import itertools
import random
from typing import Any

import pytest

from driftline.config import DriftConfig, GuardConfig, LearnerSpec
from learners.drift import ErrorDriftMonitor, LossDriftMonitor
from learners.lifecycle import ModelLifecycle, Release


def _lifecycle(
    guard: GuardConfig | None = None, *, sentinel: bool = True, task: str = "classification"
) -> ModelLifecycle:
    """A released lifecycle of the learner these tests replay (LR, or linear regression), releasing every 25 labels."""
    lc = ModelLifecycle(
        "m",
        task,
        LearnerSpec("linear_regression" if task == "regression" else "logistic_regression"),
        None,
        DriftConfig(feature_drift=False, sentinel=sentinel),
        guard or GuardConfig(),
        release_every=25,
    )
    lc.initial_release()
    return lc


def _quiet(monkeypatch: pytest.MonkeyPatch, quiet: int = 2000, watch: int = 500) -> None:
    """Quiet stretches of ``quiet`` labels (2,000: the default since session 23) and a reference snapshot refreshed
    every ``watch`` labels."""
    monkeypatch.setattr("learners.policies.QUIET_LABELS", quiet, raising=False)
    monkeypatch.setattr("learners.lifecycle.WATCH_LABELS", watch, raising=False)


def _releases(carry_release_every: int, n: int = 1500) -> list[int]:
    """Stream indices of the incremental releases of an LR on a slowly rotating linear concept."""
    rng = random.Random(3)
    lc = _lifecycle(GuardConfig(carry_release_every=carry_release_every))
    out = []
    for i in range(n):
        w = (
            i / n
        )  # the boundary turns a little with every event: the champion keeps improving on the snapshot
        x = {"a": rng.uniform(-1, 1), "b": rng.uniform(-1, 1)}
        y = int(x["a"] + (0.5 - 2 * w) * x["b"] > 0)
        for e in lc.learn_one(x, y, index=i):
            if isinstance(e, Release) and e.reason == "incremental":
                out.append(i)
    return out


def test_carried_evidence_releases_more_often_but_never_closer_than_the_floor(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The cold start's untested releases (a release every few labels until the snapshot has 151) are not what
    # this compares: the tested releases after it, with and without carried evidence.
    monkeypatch.setattr("learners.policies.COLD_START", 0)
    # Nor the young snapshot's fresh tests at ``YOUNG_MARGIN`` (not carried, so not held to the floor: session 46).
    monkeypatch.setattr("learners.policies.YOUNG_MARGIN", 0.0)
    monkeypatch.setattr(
        "learners.policies.QUIET_LABELS", 0, raising=False
    )  # the floor always (as after a drift alarm)
    restarted, carried = _releases(0), _releases(50)
    assert len(carried) > 1.5 * len(restarted) > 0  # measured: 29 against 16
    gaps = [b - a for a, b in itertools.pairwise(carried)]
    assert min(gaps) >= 50


def test_in_a_quiet_stretch_carried_releases_follow_release_every(monkeypatch: pytest.MonkeyPatch) -> None:
    """With ``QUIET_LABELS`` on: the rotating concept raises no drift alarm, so carried releases come every
    ``release_every`` (25) labels, not every ``carry_release_every`` (50), and never closer (session 18)."""
    monkeypatch.setattr("learners.policies.COLD_START", 0)
    monkeypatch.setattr("learners.policies.QUIET_LABELS", 2000, raising=False)  # the default (session 23)
    quiet = _releases(50)
    monkeypatch.setattr("learners.policies.QUIET_LABELS", 0, raising=False)
    floor = _releases(50)
    gaps = [b - a for a, b in itertools.pairwise(quiet)]
    assert min(gaps) >= 25
    assert len(quiet) > 1.3 * len(floor)
    assert sorted(gaps)[len(gaps) // 2] < 50


def test_the_detectors_score_a_snapshot_that_follows_the_served_one_every_watch_labels(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Session 19: in a quiet stretch the served snapshot follows the champion every ``release_every`` labels, and
    the error and loss detectors score a snapshot of the same lineage refreshed only every ``WATCH_LABELS`` labels
    (at once while the lineage is young), so an abrupt drift's errors stay up for them until it is refreshed."""
    monkeypatch.setattr("learners.policies.COLD_START", 0)
    _quiet(monkeypatch)
    rng = random.Random(3)
    lc = _lifecycle()
    n = 3000
    fed: list[
        tuple[Any, Any, Any]
    ] = []  # (what the detectors saw, the watched snapshot's answer, the served's)
    monitor = lc._monitor

    def spy(x: dict[str, Any], y: Any, pred: Any, *args: Any, **kwargs: Any) -> list[Any]:
        watched = lc._watched
        assert watched is not None
        fed.append((pred, watched.model.predict_one(x), lc.served_model.predict_one(x)))
        return monitor(x, y, pred, *args, **kwargs)

    monkeypatch.setattr(lc, "_monitor", spy)
    served_n, watched_n = [], []
    for i in range(n):
        w = i / n  # a boundary turning a little with every event (continuous drift: no alarm)
        x = {"a": rng.uniform(-1, 1), "b": rng.uniform(-1, 1)}
        lc.learn_one(x, int(x["a"] + (0.5 - 2 * w) * x["b"] > 0), index=i)
        served_n.append(lc._served.n_learned)
        assert lc._watched is not None
        watched_n.append(lc._watched.n_learned)
    assert all(f[0] == f[1] for f in fed)  # the detectors were fed the watched snapshot's answers
    assert any(f[0] != f[2] for f in fed)  # which are not always the served one's
    served_steps = sorted(set(served_n))
    watched_steps = sorted(set(watched_n))
    assert len(served_steps) > 3 * len(watched_steps)
    old = [s for s in watched_steps if s >= 500]
    assert len(old) >= 3
    assert all(b - a >= 500 for a, b in itertools.pairwise(old))
    young = [(s, w) for s, w in zip(served_n, watched_n, strict=True) if s < 500]
    assert young and all(s == w for s, w in young)  # a young lineage: the detectors score what is served


def test_any_release_but_an_incremental_one_gives_the_detectors_the_served_snapshot(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _quiet(monkeypatch)
    rng = random.Random(5)
    lc = _lifecycle()
    for i in range(1200):
        x = {"a": rng.uniform(-1, 1)}
        lc.learn_one(x, int(x["a"] > 0), index=i)
    assert lc._watched is not lc._served  # (the lineage learned more since the watched snapshot: measured)
    lc.apply_control("promote", {"candidate": "champion"})
    assert lc._watched is lc._served
    monkeypatch.setattr("learners.lifecycle.WATCH_LABELS", 0, raising=False)  # 0: the served snapshot always
    for i in range(1200, 1400):
        x = {"a": rng.uniform(-1, 1)}
        lc.learn_one(x, int(x["a"] > 0), index=i)
        assert lc._watched is lc._served
    _quiet(monkeypatch, 0)  # quiet off: the watch too
    for i in range(1400, 1600):
        x = {"a": rng.uniform(-1, 1)}
        lc.learn_one(x, int(x["a"] > 0), index=i)
        assert lc._watched is lc._served


def _reference_alarms(
    monkeypatch: pytest.MonkeyPatch, served_wrong_from: int | None
) -> tuple[list[tuple[str, int, str]], int]:
    """The error and loss alarms ``_monitor`` raises (signal, index, snapshot) when the reference snapshot is right
    on 400 labels and then wrong on 150, and the served snapshot is right throughout (``served_wrong_from`` None) or
    wrong on every other label from that label on; and how many reference alarms the served snapshot's errors
    refused."""
    _quiet(monkeypatch)
    lc = _lifecycle(sentinel=False)
    lc._watched = lc._served.copy()  # a reference snapshot that is not the served one
    rng = random.Random(7)
    alarms = []
    for i in range(550):
        y = rng.randint(0, 1)
        ref = y if i < 400 else 1 - y
        served = 1 - y if served_wrong_from is not None and i >= served_wrong_from and i % 2 else y
        out = lc._monitor(
            {"a": 0.0},
            y,
            ref,
            {ref: 0.9, 1 - ref: 0.1},
            i,
            [],
            served=(served, {served: 0.9, 1 - served: 0.1}),
        )
        alarms += [(e.signal, e.index, e.details.get("snapshot", "served")) for e in out]
    return alarms, lc.refused_alarms


def test_a_reference_snapshots_alarm_stands_only_if_the_served_snapshots_errors_rose_too(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Session 20 (``learners.lifecycle.CONFIRM_Z``): the reference snapshot ages alone under continuous drift; its
    alarm needs the served snapshot's error (or loss) over the alarm's recent window up by 2 standard errors on the
    labels before. Served right throughout: every reference alarm refused (and the served snapshot's detectors
    raise none); served wrong on half the labels from 400: reference alarms are added."""
    refused_alarms, refused = _reference_alarms(monkeypatch, None)
    assert refused_alarms == [] and refused >= 1
    confirmed, _ = _reference_alarms(monkeypatch, 400)
    added = [a for a in confirmed if a[2] == "reference"]
    assert added and all(400 <= i < 550 for _, i, _ in confirmed)


def _served_and_reference_alarms(
    monkeypatch: pytest.MonkeyPatch, reference_wrong_from: int | None, served_wrong_from: int | None
) -> tuple[list[tuple[str, int, str]], list[tuple[str, int, str]]]:
    """(signal, index, snapshot) of the error and loss alarms ``_monitor`` raises over 900 labels with the reference
    snapshot in effect (quiet stretches on) and, for the same served answers, with quiet stretches off (the detectors
    score the served snapshot alone: main's alarms). The reference snapshot is right until ``reference_wrong_from``,
    then wrong on every label; the served one right until ``served_wrong_from``, then wrong on every other label."""
    out = []
    for quiet in (2000, 0):
        _quiet(monkeypatch, quiet)
        lc = _lifecycle(sentinel=False)
        lc._watched = lc._served.copy()  # a reference snapshot that is not the served one
        rng = random.Random(11)
        alarms = []
        for i in range(900):
            y = rng.randint(0, 1)
            noise = rng.random() < 0.1  # both wrong on 10 % of the labels throughout
            ref = 1 - y if noise or (reference_wrong_from is not None and i >= reference_wrong_from) else y
            served = (
                1 - y if noise or (served_wrong_from is not None and i >= served_wrong_from and i % 2) else y
            )
            answer = (served, {served: 0.9, 1 - served: 0.1})
            if quiet:
                events = lc._monitor({"a": 0.0}, y, ref, {ref: 0.9, 1 - ref: 0.1}, i, [], served=answer)
            else:
                events = lc._monitor({"a": 0.0}, y, *answer, i, [])
            alarms += [(e.signal, e.index, e.details.get("snapshot", "served")) for e in events]
        out.append(alarms)
    return out[0], out[1]


def test_the_served_snapshots_alarms_are_kept_and_the_reference_only_adds_confirmed_ones(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Session 21: with the reference snapshot in effect the error and loss
    detectors still score the served snapshot, at the same labels as with quiet stretches off, and the reference
    snapshot's own detectors only add alarms the served snapshot's errors confirm (marked ``snapshot: reference``).
    """
    # The served snapshot fails from 600, the reference (frozen, right) never: main's alarms, none added.
    union, main = _served_and_reference_alarms(monkeypatch, None, 600)
    assert main and all(i >= 600 for _, i, _ in main)
    assert union == main
    # The reference fails from 600 and the served snapshot too: main's alarms all kept, confirmed ones added.
    union, main = _served_and_reference_alarms(monkeypatch, 600, 600)
    assert [a for a in union if a[2] == "served"] == main
    added = [a for a in union if a[2] == "reference"]
    assert added and all(i >= 600 for _, i, _ in added)
    # The reference fails from 600 alone (a copy ageing under continuous drift): nothing is added.
    union, main = _served_and_reference_alarms(monkeypatch, 600, None)
    assert union == main == []


def test_the_reference_snapshots_detectors_rebase_when_it_is_refreshed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Sessions 21-22: when the reference snapshot is refreshed its detectors either go on (the same objects) or
    continue from a copy of the served snapshot's (``_rebase_from_served``; which one is tested below), never start
    afresh."""
    monkeypatch.setattr("learners.policies.COLD_START", 0)
    _quiet(monkeypatch)
    rng = random.Random(3)
    lc = _lifecycle(sentinel=False)
    rows = []  # at each first label after a refresh: (went on, reference detector's count, served's before)
    for i in range(6000):
        w = i / 6000
        x = {"a": rng.uniform(-1, 1), "b": rng.uniform(-1, 1)}
        fresh = lc._ref_fresh and lc._watched is not lc._served
        before = lc._ref_error_monitor
        served_n = lc._error_monitor._n
        lc.learn_one(x, int(x["a"] + (0.5 - 2 * w) * x["b"] > 0), index=i)
        monitor = lc._ref_error_monitor
        if fresh and monitor is not None:
            rows.append((monitor is before, monitor._n, served_n))
    assert len(rows) >= 3
    # A copy of the served snapshot's detectors, one label in; or the same detectors going on.
    assert all(went_on or n == s + 1 for went_on, n, s in rows)
    assert not all(went_on for went_on, _, _ in rows)  # (here the served window is long: the copy, measured)


def _rebased(
    monkeypatch: pytest.MonkeyPatch,
    served: list[tuple[int, float]],
    own: list[tuple[int, float]] | None,
) -> tuple[bool, float]:
    """At a refresh of the reference snapshot (``_rebase_reference``): did its error
    detector go on (True) or continue from a copy of the served snapshot's (False), and the window it then has. The
    served snapshot's detector has seen ``served`` ((labels, error rate), in order), the reference's own ``own``
    (None: it has none yet)."""
    monkeypatch.setattr("learners.lifecycle.WATCH_LABELS", 500, raising=False)
    rng = random.Random(5)

    def fed(stretches: list[tuple[int, float]]) -> ErrorDriftMonitor:
        monitor = ErrorDriftMonitor(DriftConfig(feature_drift=False))
        for i, p in enumerate(p for n, p in stretches for _ in range(n)):
            monitor.update(float(rng.random() < p), i)
        return monitor

    lc = _lifecycle(sentinel=False)
    lc._error_monitor = fed(served)
    mine = lc._ref_error_monitor = None if own is None else fed(own)
    lc._ref_loss_monitor = None if own is None else LossDriftMonitor(lc.drift, "classification")
    lc._ref_fresh = True
    lc._rebase_reference()
    monitor = lc._ref_error_monitor
    assert monitor is not None and not lc._ref_fresh
    if monitor is not mine:
        assert monitor is not lc._error_monitor  # a copy: the two go on apart
    return monitor is mine, float(monitor._detector.width)


def test_the_reference_detectors_continue_from_the_served_ones_only_when_those_keep_a_window(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Session 22: at a refresh the reference snapshot's detectors continue from a copy
    of the served snapshot's only when the served error detector's window is at least ``WATCH_LABELS`` labels or at
    least the reference's own; a served ADWIN that has just cut on a fall (agrawal-abrupt at seed 1, session 21: a
    window of 7 labels) leaves the reference's own detectors to go on."""
    cut = [(600, 0.5), (80, 0.0)]  # ADWIN cuts on the fall: a window of 8 labels
    steady = [(800, 0.15)]
    # Just cut: the reference's own (800 labels) go on (a copy would have an 8-label window).
    assert _rebased(monkeypatch, cut, steady) == (True, 800.0)
    # A window of WATCH_LABELS or more: the copy, even if the reference's own is longer.
    assert _rebased(monkeypatch, [(700, 0.15)], steady) == (False, 700.0)
    # Shorter than WATCH_LABELS but longer than the reference's own: the copy.
    assert _rebased(monkeypatch, [(300, 0.15)], [(200, 0.15)]) == (False, 300.0)
    # No detectors of its own yet: the copy.
    assert _rebased(monkeypatch, cut, None) == (False, 8.0)


def test_quiet_stretches_and_the_reference_snapshot_are_the_default_for_classification(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Session 23: with nothing patched, a classification lineage with no drift alarm releases every
    ``release_every`` (25) labels, not at the carried floor (50), and its detectors watch a reference snapshot;
    regression keeps the floor and no reference (``policies.QUIET_TASKS``)."""
    monkeypatch.setattr("learners.policies.COLD_START", 0)
    gaps = [b - a for a, b in itertools.pairwise(_releases(50))]
    assert min(gaps) >= 25
    assert sorted(gaps)[len(gaps) // 2] < 50  # (before session 23: the floor, every gap 50 or more)
    for task, watch in (("classification", 500), ("regression", 0)):
        lc = _lifecycle(task=task)
        assert lc._watch_labels() == watch
