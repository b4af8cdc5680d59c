"""A challenger ``auto`` pool that a drift alarm starts holds warm copies of the champion's members
(learners.pool.WARM_START): they keep the old lineage's splits and weights and re-learn next to the fresh members.

The pool stays bounded over repeated alarms (at most twice its fresh members, one member of each kind again
``WARM_PRUNE`` labels after the warm start), pickles (a trainer's checkpoint, a pool pickled before the warm
start existed) and releases (the scorers' restricted unpickler) carry it, and ``learn_batch`` learns it exactly as
``learn_one`` does.
"""

from __future__ import annotations

import dataclasses
import math
import pickle
import random
from typing import Any

import pytest

from driftline.config import DriftConfig, GuardConfig, LearnerSpec
from learners import pool as pool_module
from learners.artifacts import build_release, load_release
from learners.lifecycle import Labelled, ModelLifecycle
from learners.policies import Lineage
from learners.pool import DEFAULT_MEMBERS, Pool
from learners.specs import Learner, build_learner
from tests.test_learners_learn_batch import _outcome  # events compared without their latencies

KEY = b"test-signing-key"


def _lifecycle(task: str) -> ModelLifecycle:
    lc = ModelLifecycle(
        "m",
        task,
        LearnerSpec("auto"),
        None,
        dataclasses.replace(DriftConfig(), feature_drift=False),
        GuardConfig(),
        release_every=25,
    )
    lc.initial_release()
    return lc


def _rows(task: str, n: int, seed: int, flip: int | None = None) -> list[tuple[dict[str, float], Any]]:
    """Three features; the target (a step and a slope, or its sign for classification) negated from ``flip`` on."""
    rng = random.Random(seed)
    rows: list[tuple[dict[str, float], Any]] = []
    for i in range(n):
        x = {"a": rng.uniform(-1, 1), "b": rng.uniform(-1, 1), "c": rng.uniform(-1, 1)}
        y = 3.0 * (x["a"] > 0.2) + 2.0 * x["b"] - x["c"] + rng.gauss(0, 0.3)
        if flip is not None and i >= flip:
            y = -y
        rows.append((x, y if task == "regression" else int(y > 1.0)))
    return rows


def _trained(task: str, n: int = 1500) -> ModelLifecycle:
    lc = _lifecycle(task)
    for i, (x, y) in enumerate(_rows(task, n, seed=1)):
        lc.learn_one(x, y, index=i)
    return lc


@pytest.mark.parametrize("task", ["classification", "regression"])
def test_a_challenger_pool_holds_warm_copies_of_the_champion_members(task: str) -> None:
    lc = _trained(task)
    champion = lc.champion.model
    assert isinstance(champion, Pool)
    lc._challenger.drop()
    lc._start_challenger(lc._count)
    challenger = lc.challenger
    assert challenger is not None
    members = challenger.model.members
    fresh = len(DEFAULT_MEMBERS[task])
    assert len(members) == fresh + len(champion.members)
    assert challenger.model._warm
    # The warm members are copies (not the champion's own objects) that answer as the champion's members do.
    probe = [x for x, _ in _rows(task, 50, seed=9)]
    for warm, old in zip(members[fresh:], champion.members, strict=True):
        assert warm is not old and warm.spec == old.spec
        for x in probe:
            assert warm.predict_one(x) == old.predict_one(x)
    # ... and they learn inside the challenger, not the champion.
    x, y = _rows(task, 1, seed=10)[0]
    before = sum(old._counts.values()) if task == "classification" else old._y_n
    challenger.learn_one(x, y)
    after = sum(old._counts.values()) if task == "classification" else old._y_n
    assert after == before
    assert (sum(members[-1]._counts.values()) if task == "classification" else members[-1]._y_n) > before


def test_a_challenger_of_a_non_pool_champion_is_built_as_given() -> None:
    lc = ModelLifecycle(
        "m", "regression", LearnerSpec("linear_regression"), None, DriftConfig(), GuardConfig()
    )
    lc._start_challenger(10)
    assert lc.challenger is not None and lc.challenger.spec == LearnerSpec("linear_regression")


def test_warm_start_off_builds_a_fresh_pool(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pool_module, "WARM_START", False)
    lc = _trained("regression", 300)
    lc._challenger.drop()
    lc._start_challenger(lc._count)
    assert lc.challenger is not None
    assert len(lc.challenger.model.members) == len(DEFAULT_MEMBERS["regression"])


@pytest.mark.parametrize("task", ["classification", "regression"])
def test_the_pool_stays_bounded_over_repeated_alarms(task: str) -> None:
    """Each challenger is promoted and the next alarm warm-starts from it: the pool never exceeds twice its fresh
    members, and it is back to one member of each kind once it has learned WARM_PRUNE labels."""
    fresh = len(DEFAULT_MEMBERS[task])
    lc = _trained(task, 600)
    rows = _rows(task, 12 * 300, seed=2, flip=1800)
    for alarm in range(12):
        lc._challenger.drop()
        lc._start_challenger(lc._count)
        challenger = lc._challenger.lineage
        assert challenger is not None
        assert len(challenger.model.model.members) <= 2 * fresh
        lc._lineage = Lineage(challenger.model, challenger.n_learned)  # promoted
        lc._challenger.drop()
        for x, y in rows[alarm * 300 : (alarm + 1) * 300]:
            lc._lineage.learn(x, y, lc._count, None)
            lc._count += 1
    pool = lc.champion.model
    assert len(pool.members) <= 2 * fresh
    # Learning on, it prunes back to one member of each kind.
    assert pool_module.WARM_PRUNE is not None
    for x, y in _rows(task, pool_module.WARM_PRUNE + 1, seed=3):
        pool.learn_one(x, y)
    assert len(pool.members) == fresh and not pool._warm
    assert sorted(m.spec.name for m in pool.members) == sorted(m["name"] for m in DEFAULT_MEMBERS[task])
    assert 0 <= pool.leader < fresh


def test_prune_keeps_the_member_with_the_lowest_loss_of_each_kind() -> None:
    lc = _trained("regression", 400)
    lc._challenger.drop()
    lc._start_challenger(lc._count)
    assert lc.challenger is not None
    pool = lc.challenger.model
    pool.losses = [5.0, 1.0, 2.0, 7.0]  # fresh LR, fresh tree, warm LR, warm tree
    warm_lr, fresh_tree = pool.members[2], pool.members[1]
    pool.leader = 1
    pool._prune()
    assert pool.members == [fresh_tree, warm_lr]
    assert pool.losses == [1.0, 2.0]
    assert pool.leader == 0


def test_a_pool_pickled_before_the_warm_start_restores_as_one_never_warm_started() -> None:
    pool = build_learner(LearnerSpec("auto"), "regression", 0).model
    state = dict(pool.__dict__)
    state.pop("_warm", None)
    state.pop("_since_warm", None)
    old = Pool.__new__(Pool)
    old.__dict__.update(state)
    restored = pickle.loads(pickle.dumps(old))
    assert restored._warm is False and restored._since_warm == 0
    restored.learn_one({"a": 1.0}, 2.0)


@pytest.mark.parametrize("task", ["classification", "regression"])
def test_a_warm_challenger_round_trips_through_a_checkpoint_and_a_release(task: str) -> None:
    lc = _trained(task)
    lc._challenger.drop()
    lc._start_challenger(lc._count)
    challenger = lc.challenger
    assert challenger is not None
    for x, y in _rows(task, 100, seed=4, flip=0):
        challenger.learn_one(x, y)
    assert len(challenger.model.members) == 2 * len(DEFAULT_MEMBERS[task])
    probe = [x for x, _ in _rows(task, 50, seed=5)]
    # A trainer's checkpoint: the whole lifecycle, plain pickle.
    restored = pickle.loads(pickle.dumps(lc))
    assert restored.challenger is not None
    assert restored.challenger.model._warm and restored.challenger.model._since_warm == 100
    # A release of the warm pool, through the scorers' restricted unpickler.
    release = build_release(
        challenger,
        name="m",
        version=2,
        parent=1,
        reason="challenger",
        metrics={},
        key=KEY,
        n_learned=100,
        created_at=1_700_000_000_000,
    )
    loaded = load_release(release, key=KEY)[1]
    assert isinstance(loaded, Learner) and len(loaded.model.members) == len(challenger.model.members)
    for model in (restored.challenger, loaded):
        for x in probe:
            assert model.predict_one(x) == challenger.predict_one(x)


def _examples(task: str) -> list[Labelled]:
    rows = _rows(task, 1500, seed=1) + _rows(task, 2500, seed=6, flip=0)
    return [Labelled(x, y, index=i, ts=i) for i, (x, y) in enumerate(rows)]


@pytest.mark.parametrize("task", ["classification", "regression"])
def test_learn_batch_learns_a_warm_challenger_as_learn_one_does(task: str) -> None:
    examples = _examples(task)
    one, batched = _lifecycle(task), _lifecycle(task)
    expected = []
    warm_seen, pruned = 0, False
    for e in examples:
        expected.append(_outcome(one.learn_one(e.x, e.y, index=e.index, ts=e.ts)))
        challenger = one.challenger
        if challenger is not None and challenger.model._warm:
            warm_seen += 1
        pool = one.champion.model
        if pool._since_warm > pool_module.WARM_PRUNE:  # type: ignore[operator]
            pruned = True
    assert warm_seen > 50, "the stream must start a warm challenger and keep it a while"
    assert pruned, "the promoted warm pool must be pruned within the stream (its members' indices shift)"
    got: list[Any] = []
    rng = random.Random(7)
    k = 0
    while k < len(examples):
        size = rng.choice([1, 7, 64, 500])
        for r in batched.learn_batch(examples[k : k + size]):
            assert not isinstance(r, Exception)
            got.append(_outcome(r))
        k += size
    assert got == expected
    probe = [x for x, _ in _rows(task, 200, seed=8)]
    pairs = [(one.champion, batched.champion), (one.served_model, batched.served_model)]
    if one.challenger is not None:
        assert batched.challenger is not None
        pairs.append((one.challenger, batched.challenger))
    for a, b in pairs:
        assert len(a.model.members) == len(b.model.members)
        assert a.model.losses == pytest.approx(b.model.losses, rel=1e-9, abs=1e-12)
        for x in probe:
            pa, pb = a.predict_one(x), b.predict_one(x)
            assert pa == pb if task == "classification" else math.isclose(pa, pb, rel_tol=1e-9, abs_tol=1e-9)


@pytest.mark.parametrize(
    ("checks", "restarted"), [({"reference": False}, True), ({"reference": True}, False)]
)
def test_a_challenger_vetoed_by_the_reference_set_shows_its_superiority_again(
    checks: dict[str, bool], restarted: bool
) -> None:
    """A warm challenger started inside a label-flip burst re-learns fast enough to pass the reference check after
    the burst; the superiority it showed on the flipped labels must not carry its promotion."""
    from learners.guard import Decision

    lc = _trained("classification", 400)
    lc._challenger.drop()
    lc._start_challenger(390)
    challenger = lc._challenger.lineage
    assert challenger is not None
    for _x, y in _rows("classification", 300, seed=11, flip=0):
        lc._challenger.evidence.add(y, y, 1 - y, None)  # the challenger right, the champion wrong
    assert lc._challenger.evidence.n == 300
    verdict = Decision("reject", "challenger", "challenger", {}, checks, "test")
    lc._challenger.decide = lambda index, champion, judge: (verdict, None)  # type: ignore[method-assign]
    events = lc._decide(700)
    assert verdict in events
    assert lc._challenger.lineage is challenger and lc._challenger.started == 390
    assert (lc._challenger.evidence.n == 0) is restarted


def test_a_warm_regression_pool_blends_each_kinds_best_member_once() -> None:
    """A copy and its fresh twin are one kind: blended both, that kind would weigh twice against the other."""
    lc = _trained("regression", 400)
    lc._challenger.drop()
    lc._start_challenger(lc._count)
    assert lc.challenger is not None
    pool = lc.challenger.model
    for x, y in _rows("regression", 100, seed=12):
        pool.learn_one(x, y)
    assert pool._warm and pool.weight > pool_module.WARMUP
    pool.losses = [w * pool.weight for w in (2.0, 1.0, 1.5, 3.0)]  # fresh LR, fresh tree, warm LR, warm tree
    x = _rows("regression", 1, seed=13)[0][0]
    answers = [m.predict_one(x, cleaned=True) for m in pool.members]
    w_lr, w_tree = 1.5**-pool_module.BLEND_POWER, 1.0**-pool_module.BLEND_POWER
    expected = (w_lr * answers[2] + w_tree * answers[1]) / (w_lr + w_tree)
    assert pool.predict_one(x) == pytest.approx(expected, rel=1e-12)
    assert answers[0] != pytest.approx(
        answers[2]
    )  # the two linear members answer differently: the test can fail
