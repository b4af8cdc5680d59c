"""The ``pickle5+zlib+steps`` format: models load in steps another thread can run between; no other format loads."""

from __future__ import annotations

import gc
import io
import pickle
import sys
import zlib
from itertools import islice, pairwise
from typing import Any

import pytest
from river import forest, linear_model, preprocessing, stats, tree
from river.datasets import synth
from river.tree.splitter import GaussianSplitter

from driftline.config import LearnerSpec
from driftline.errors import ArtifactError, SecurityError
from learners import safe_pickle
from learners.features import share_distribution_rngs
from learners.specs import KINDS, build_learner
from streams.releases import collector_paused

KEY = b"steps-key"


def _stream(n: int, start: int = 0) -> list[tuple[dict[str, Any], Any]]:
    return list(islice(synth.Agrawal(classification_function=2, seed=7), start, start + n))


def _trained(model: Any, n: int = 400) -> Any:
    for x, y in _stream(n):
        model.learn_one(x, y)
    return model


MODELS = {
    "logistic_pipeline": lambda: preprocessing.StandardScaler() | linear_model.LogisticRegression(),
    "hoeffding_tree": lambda: tree.HoeffdingTreeClassifier(grace_period=50),
    "arf": lambda: forest.ARFClassifier(n_models=3, seed=1, grace_period=50),
    "sklearn_learner": lambda: build_learner(LearnerSpec("sklearn_sgd", {"classes": [0, 1]}), seed=3),
    "learner_wrapper_arf": lambda: build_learner(
        LearnerSpec("adaptive_random_forest", {"n_models": 2}), seed=3
    ),
}


@pytest.mark.parametrize("kind", sorted(MODELS))
def test_models_round_trip_in_steps(kind: str) -> None:
    model = _trained(MODELS[kind]())
    payload = safe_pickle.dumps(model)
    assert b"_set_state" in zlib.decompress(payload), "expected objects restored through the state setter"
    restored: Any = safe_pickle.loads(payload, safe_pickle.FORMAT)
    assert type(restored) is type(model)
    probe = [x for x, _ in _stream(100, start=400)]
    assert [restored.predict_one(x) for x in probe] == [model.predict_one(x) for x in probe]
    # Learning after the reload follows the same path as the original.
    for x, y in _stream(100, start=500):
        model.learn_one(x, y)
        restored.learn_one(x, y)
    assert [restored.predict_one(x) for x in probe] == [model.predict_one(x) for x in probe]


def test_shared_objects_stay_shared_and_frozen_dataclasses_load() -> None:
    mean = stats.Mean()
    spec = LearnerSpec("hoeffding_tree", {"grace_period": 50})
    restored: Any = safe_pickle.loads(safe_pickle.dumps({"a": mean, "b": mean, "spec": spec}))
    assert restored["a"] is restored["b"]
    assert restored["spec"] == spec


def test_the_unreleased_plain_format_is_refused() -> None:
    # "pickle5+zlib" (no state setter) was written only before 0.1.0 was released: nothing to read any more.
    payload = zlib.compress(
        pickle.dumps(_trained(tree.HoeffdingTreeClassifier(grace_period=50)), protocol=5), 6
    )
    with pytest.raises(ArtifactError, match=r"unknown artifact format 'pickle5\+zlib'"):
        safe_pickle.loads(payload, "pickle5+zlib")


def test_unknown_format_is_refused_naming_the_known_ones() -> None:
    with pytest.raises(
        ArtifactError, match=r"unknown artifact format 'pickle6\+zlib' .*'pickle5\+zlib\+steps'"
    ):
        safe_pickle.loads(safe_pickle.dumps(1), "pickle6+zlib")


class _CallSetter:
    """Pickles as ``_set_state(target, state)``: what a forged payload could ask for."""

    def __init__(self, target: Any, state: Any) -> None:
        self.args = (target, state)

    def __reduce__(self) -> tuple[Any, ...]:
        return (safe_pickle._set_state, self.args)


@pytest.mark.parametrize(
    ("target", "state", "message"),
    [
        (stats.Mean(), [("n", 1)], "must be a dict, got list"),
        (stats.Mean, {"update": None}, "state of a ABCMeta"),  # a class's attributes are never set
    ],
)
def test_state_setter_refuses_what_build_would_not_do(target: Any, state: Any, message: str) -> None:
    raw = pickle.dumps(_CallSetter(target, state), protocol=5)
    with pytest.raises(SecurityError, match=message):
        safe_pickle.loads(zlib.compress(raw))


def _large_model() -> list[GaussianSplitter]:
    # Thousands of splitters (each with a few statistics): the new format calls the state setter after each
    # one, the old one unpickled them in a single call that holds the interpreter lock.
    model = [GaussianSplitter() for _ in range(12_000)]
    for i, splitter in enumerate(model):
        splitter.update(float(i), i % 2, 1.0)
    # One generator for all distributions, as in a Learner: a generator each would make a Python
    # Random.__setstate__ call each, which would let the ticker in during the old format's load too.
    share_distribution_rngs(model)
    return model


def test_the_stepped_format_makes_a_python_call_per_object(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each call is a point where the interpreter can switch threads (the load is never one long C call)."""
    model = _large_model()
    steps = zlib.decompress(safe_pickle.dumps(model))
    one_call = pickle.dumps(model, protocol=5)  # the old format's payload
    calls = 0
    setter = safe_pickle._set_state

    def counting(obj: Any, state: Any) -> None:
        nonlocal calls
        calls += 1
        setter(obj, state)

    counting.__module__ = safe_pickle.__name__  # the allow-list checks where a function really lives
    monkeypatch.setattr(safe_pickle, "_set_state", counting)
    restored = safe_pickle.RestrictedUnpickler(io.BytesIO(steps)).load()
    assert calls >= len(model) and len(restored) == len(model)
    calls = 0
    safe_pickle.RestrictedUnpickler(io.BytesIO(one_call)).load()
    assert calls == 0


def _longest_stretch(raw: bytes, monkeypatch: pytest.MonkeyPatch) -> tuple[int, int]:
    """(most memory blocks allocated between two state-setter calls, blocks allocated by the whole load)."""
    marks: list[int] = []
    setter = safe_pickle._set_state

    def marking(obj: Any, state: Any) -> None:
        marks.append(sys.getallocatedblocks())
        setter(obj, state)

    marking.__module__ = safe_pickle.__name__  # the allow-list checks where a function really lives
    monkeypatch.setattr(safe_pickle, "_set_state", marking)
    gc.collect()
    gc.disable()  # a collection in the middle would free blocks and hide a stretch's allocations
    try:
        start = sys.getallocatedblocks()
        restored = safe_pickle.RestrictedUnpickler(io.BytesIO(raw)).load()
        end = sys.getallocatedblocks()
    finally:
        gc.enable()
        monkeypatch.undo()
    assert len(restored) == 12_000
    points = [start, *marks, end]
    return max(b - a for a, b in pairwise(points)), end - start


def test_no_stretch_of_a_large_load_runs_without_a_hand_over_point(monkeypatch: pytest.MonkeyPatch) -> None:
    """Between two state-setter calls (Python calls, where the interpreter may hand the lock to another thread),
    the unpickler builds at most a small share of the model. Measured as memory blocks allocated: a count, not a
    time, so the result does not depend on the machine's load."""
    model = _large_model()
    longest, total = _longest_stretch(zlib.decompress(safe_pickle.dumps(model)), monkeypatch)
    assert total > 100_000  # the model is large: 1 % of it is over 1000 blocks
    assert longest <= 0.01 * total, (longest, total)
    # The same measure on the one-call format: the whole load is one stretch.
    longest, total = _longest_stretch(pickle.dumps(model, protocol=5), monkeypatch)
    assert longest == total


@pytest.mark.parametrize("name", sorted(KINDS))
def test_no_learner_kind_has_reference_cycles(name: str) -> None:
    # collector_paused freezes loaded models: a model with a cycle would never be freed after its swap.
    task = KINDS[name][1][0]
    params: dict[str, Any] = {"classes": [0, 1]} if name == "sklearn_sgd" else {}
    learner = build_learner(LearnerSpec(name, params), task=task, seed=3)
    for x, y in _stream(300):
        learner.learn_one(x, x["salary"] if task == "regression" else y)
    payload = safe_pickle.dumps(learner)
    gc.collect()
    gc.disable()
    try:
        restored = safe_pickle.loads(payload)
        del restored
        assert gc.collect() == 0
    finally:
        gc.enable()


def test_collector_paused_freezes_a_loaded_model_and_restores_the_collector() -> None:
    before = gc.get_freeze_count()
    try:
        with collector_paused():
            assert not gc.isenabled()
            model = [stats.Mean() for _ in range(100)]
        assert gc.isenabled() and gc.get_freeze_count() >= before + len(model)
        frozen = gc.get_freeze_count()
        with pytest.raises(ArtifactError), collector_paused():
            raise ArtifactError("a failed load")
        assert gc.isenabled() and gc.get_freeze_count() == frozen  # nothing frozen after a failure
    finally:
        gc.unfreeze()
