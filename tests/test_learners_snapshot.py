"""A released LR snapshot that is not unpickled (``learners.snapshot.FrozenLinear``, session 26) answers, explains,
pickles and copies as the ``Learner.copy()`` it replaces, and becomes that copy when River's objects are read.
"""

from __future__ import annotations

import copy
import pickle
from typing import Any

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench.data import make_rows
from driftline.config import DriftConfig, GuardConfig, LearnerSpec
from learners import lifecycle as lifecycle_module
from learners import safe_pickle
from learners.batch import BatchContext, BatchPredictor, _mirror_pipeline
from learners.explain import feature_weights, weight_changes
from learners.lifecycle import Labelled, ModelLifecycle, Release
from learners.snapshot import FrozenLinear, snapshot
from learners.specs import Learner, build_learner

PROPS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])

names = st.sampled_from(["a", "b", "c", "d", "e"])
values = st.one_of(
    st.floats(-1e3, 1e3, allow_nan=False), st.integers(-5, 5), st.booleans(), st.sampled_from(["x", "y"])
)
rows = st.lists(st.tuples(st.dictionaries(names, values, min_size=1), st.booleans()), min_size=2, max_size=60)
label_kinds = st.sampled_from([(True, False), (0, 1), ("yes", "no"), (1.0, 0.0)])


def _trained(data: list[tuple[dict[str, Any], bool]], labels: tuple[Any, Any]) -> Learner:
    learner = build_learner(LearnerSpec("logistic_regression"), "classification")
    learner.learn_one({"a": 1.0}, labels[0])  # both classes seen: the snapshot applies
    learner.learn_one({"a": -1.0}, labels[1])
    for x, y in data:
        learner.learn_one(x, labels[int(y)])
    return learner


def _bits(a: np.ndarray) -> bytes:
    return np.asarray(a, dtype=np.float64).tobytes()


@PROPS
@given(rows, rows, label_kinds)
def test_a_snapshot_is_the_copy_it_replaces(
    before: list[tuple[dict[str, Any], bool]],
    after: list[tuple[dict[str, Any], bool]],
    labels: tuple[Any, Any],
) -> None:
    champion = _trained(before, labels)
    frozen, copied = snapshot(champion), champion.copy()
    assert type(frozen) is FrozenLinear and "_model" not in frozen.__dict__
    for x, y in after:  # the champion goes on learning: neither copy moves
        champion.learn_one(x, labels[int(y)])
    # The batch path's mirror, from the frozen statistics, equals the one made from the copy's River objects.
    mirror, expected = BatchPredictor(frozen).mirror, _mirror_pipeline(copied.model)
    assert mirror is not None and expected is not None
    assert mirror.index == expected.index and mirror.intercept == expected.intercept
    for a, b in ((mirror.mean, expected.mean), (mirror.std, expected.std), (mirror.weight, expected.weight)):
        assert _bits(a) == _bits(b)
    assert BatchPredictor(frozen).inner_classes == BatchPredictor(copied).inner_classes
    # The explanation's weights, and a weight change between two snapshots, without unpickling.
    assert feature_weights(frozen) == feature_weights(copied)
    other = snapshot(champion)
    assert weight_changes(frozen, other) == weight_changes(copied, champion.copy())
    assert type(frozen) is FrozenLinear and type(other) is FrozenLinear  # still not unpickled
    # The artifact's bytes are the champion's pickle, recorded for the snapshot as for the copy.
    assert safe_pickle.dumps(frozen) == safe_pickle.dumps(copied)
    # A per-event answer reads River's objects: the snapshot becomes the copy.
    xs = [x for x, _ in before + after]
    assert [frozen.predict_with_proba(x) for x in xs] == [copied.predict_with_proba(x) for x in xs]
    assert type(frozen) is Learner
    assert list(frozen.__dict__) == list(copied.__dict__)
    assert pickle.dumps(frozen, protocol=5) == pickle.dumps(copied, protocol=5)
    assert safe_pickle.compact(frozen) == safe_pickle.compact(copied)


@PROPS
@given(rows, label_kinds)
def test_pickling_or_copying_a_snapshot_gives_the_copys_bytes(
    data: list[tuple[dict[str, Any], bool]], labels: tuple[Any, Any]
) -> None:
    champion = _trained(data, labels)
    # A checkpoint's pickle (plain pickle of the lifecycle: the snapshot inside it).
    frozen, copied = snapshot(champion), champion.copy()
    assert pickle.dumps({"served": frozen}, protocol=5) == pickle.dumps({"served": copied}, protocol=5)
    restored = pickle.loads(pickle.dumps(frozen, protocol=5))
    assert type(restored) is Learner and type(frozen) is Learner
    # deepcopy and copy() (a rollback copies the snapshot it restores).
    for make in (copy.deepcopy, lambda m: m.copy()):
        frozen, copied = snapshot(champion), champion.copy()
        made, expected = make(frozen), make(copied)
        assert type(made) is Learner
        assert pickle.dumps(made, protocol=5) == pickle.dumps(expected, protocol=5)
        assert safe_pickle.compact(made) == safe_pickle.compact(expected)


def test_the_artifact_bytes_stand_after_the_snapshot_is_unpickled() -> None:
    champion = _trained([({"a": float(i % 5), "b": 2.0}, i % 3 == 0) for i in range(60)], (True, False))
    frozen, copied = snapshot(champion), champion.copy()
    frozen.predict_one({"a": 1.0})  # unpickled before its release is published
    assert type(frozen) is Learner
    assert safe_pickle.dumps(frozen) == safe_pickle.dumps(copied) == safe_pickle.dumps(champion)


def test_other_learners_get_the_plain_copy() -> None:
    one_class = build_learner(LearnerSpec("logistic_regression"), "classification")
    one_class.learn_one({"a": 1.0}, True)
    tree = build_learner(LearnerSpec("hoeffding_tree"), "classification")
    regression = build_learner(LearnerSpec("linear_regression"), "regression")
    for learner in (one_class, tree, regression):
        learner.learn_one({"a": 2.0}, True if learner.task == "classification" else 1.5)
        assert type(snapshot(learner)) is Learner
    three = _trained([], ("a", "b"))
    three.learn_one({"a": 0.5}, "c")  # one-vs-rest now
    assert type(snapshot(three)) is Learner


def _untimed(value: Any) -> Any:
    """``value`` without the keys that hold a timed latency (the guard's latency check: the only clock)."""
    if isinstance(value, dict):
        return {k: _untimed(v) for k, v in value.items() if "latency" not in str(k)}
    return value


def _releases(examples: list[Labelled], frozen: bool) -> list[tuple[Any, ...]]:
    lc = ModelLifecycle(
        "m", "classification", LearnerSpec("logistic_regression"), None, DriftConfig(), GuardConfig()
    )
    saved = lifecycle_module.snapshot
    if not frozen:
        lifecycle_module.snapshot = lambda learner: learner.copy()
    try:
        out: list[tuple[Any, ...]] = []
        kinds: set[type] = set()
        for k in range(0, len(examples), 400):
            results = lc.learn_batch(examples[k : k + 400])
            if k == 1600 and lc.rollback_version is not None:
                # An operator's rollback between batches: the replaced snapshot (kept by probation) is copied.
                results.append(lc.apply_control("rollback", {}))
            for events in results:
                assert not isinstance(events, Exception)
                for e in events:
                    if isinstance(e, Release):
                        kinds.add(type(e.model))
                        payload = safe_pickle.dumps(e.model)
                        metrics = _untimed(e.metrics)
                        decision = None if e.decision is None else _untimed(e.decision.__dict__)
                        out.append((e.version, e.parent, e.reason, metrics, decision, e.index, payload))
                    else:
                        out.append((type(e).__name__, _untimed(e.__dict__)))
        assert (FrozenLinear in kinds) is frozen
        return out
    finally:
        lifecycle_module.snapshot = saved


def test_learn_batch_releases_the_same_with_frozen_snapshots() -> None:
    examples = [Labelled(x, y, None, None, None, i) for i, (_, x, y) in enumerate(make_rows(3000, seed=3))]
    frozen, copied = _releases(examples, True), _releases(examples, False)
    assert len([r for r in frozen if isinstance(r[0], int)]) > 20  # releases happened
    assert any(r[2] == "rollback" for r in frozen if isinstance(r[0], int))
    assert frozen == copied


def test_a_batch_predicts_a_snapshot_as_its_copy() -> None:
    champion = _trained([({"a": float(i % 7), "b": i / 10}, i % 2 == 0) for i in range(80)], (1, 0))
    frozen, copied = snapshot(champion), champion.copy()
    xs = [{"a": float(i % 5), "b": i / 7} for i in range(40)] + [{"a": None, "b": "s"}, {"z": 3.0}]
    batch_a, batch_b = BatchContext(xs), BatchContext(xs)
    got = [batch_a.frozen(frozen, i, batch_a.cleaned(i)) for i in range(len(xs))]
    want = [batch_b.frozen(copied, i, batch_b.cleaned(i)) for i in range(len(xs))]
    assert got == want
