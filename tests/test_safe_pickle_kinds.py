"""The compact pickler's per-class decisions (``safe_pickle._KINDS``, session 38) give the bytes of deciding per
object: a release's artifact is the same with and without the cache."""

from __future__ import annotations

import random
from itertools import islice
from typing import Any

import pytest
from river import proba
from river.datasets import synth
from river.proba.base import Distribution

from driftline.config import LearnerSpec
from learners import safe_pickle
from learners.specs import KINDS, build_learner


class _PerObject(safe_pickle.CompactPickler):
    """The decision made anew for every object, as before the cache: ``_plain_class`` of its class and an
    ``isinstance`` test against River's ``Distribution``."""

    def reducer_override(self, obj: Any) -> Any:
        plain = safe_pickle._plain_class(type(obj))
        distribution = self._distribution is not None and isinstance(obj, self._distribution)
        if not plain and not distribution:
            return NotImplemented
        return self._reduce(obj, plain, distribution)


def _per_object(model: object, monkeypatch: pytest.MonkeyPatch) -> bytes:
    with monkeypatch.context() as m:
        m.setattr(safe_pickle, "CompactPickler", _PerObject)
        return safe_pickle.compact(model)


def _trained(kind: str, n: int = 300) -> Any:
    tasks = KINDS[kind][1]
    task = "classification" if "classification" in tasks else tasks[0]
    params = {"classes": [0, 1]} if kind == "sklearn_sgd" else {}
    learner = build_learner(LearnerSpec(kind, params), task)
    stream = (
        synth.Agrawal(classification_function=2, seed=7) if task == "classification" else synth.Friedman(7)
    )
    for x, y in islice(stream, n):
        learner.learn_one(x, y)
    return learner


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_cached_decisions_give_the_per_object_bytes(kind: str, monkeypatch: pytest.MonkeyPatch) -> None:
    learner = _trained(kind)
    # Twice: the first pickle fills the cache for these classes, the second reads it.
    for _ in range(2):
        assert safe_pickle.compact(learner) == _per_object(learner, monkeypatch)
    assert safe_pickle.compact(learner._model) == _per_object(learner._model, monkeypatch)


def test_a_distribution_still_gets_its_seed_and_a_plain_object_its_setter(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    gaussian = proba.Gaussian()
    for v in (1.0, 2.0, 4.0):
        gaussian.update(v)
    value = {"g": gaussian, "again": [gaussian, proba.Gaussian()]}
    for _ in range(2):
        raw = safe_pickle.compact(value)
        assert raw == _per_object(value, monkeypatch)
        assert b"_set_state" in safe_pickle.compact(_trained("logistic_regression"))


class Late:
    """Neither plain (not under river or learners) nor a distribution, until registered as one."""

    def __init__(self) -> None:
        self._rng = random.Random(3)  # written as itself, or as a seed once a distribution


def test_a_class_registered_as_a_distribution_later_is_decided_again(monkeypatch: pytest.MonkeyPatch) -> None:
    late = Late()
    before = safe_pickle.compact(late)
    safe_pickle.compact(late)
    assert safe_pickle._KINDS[Late] == 0
    Distribution.register(Late)  # an ABC registration changes abc's cache token
    assert isinstance(late, Distribution)
    after = safe_pickle.compact(late)
    assert after == _per_object(late, monkeypatch) != before
    assert safe_pickle._KINDS[Late] == safe_pickle._DISTRIBUTION
