"""``InputWatch.check_many`` (the trainer's batch form) against ``InputWatch.check`` one example at a time: the same
warnings, in the same order, at the same indices, and the same state after (pickled byte for byte), on streams
where names appear, values change type (subclasses and numpy scalars included), go missing, and classes appear."""

from __future__ import annotations

import pickle
import random
from typing import Any

import numpy as np
import pytest

from streams.watch import MAX_NAMES, InputWatch

VALUES: list[Any] = [0.5, -2.0, 3, True, "sunny", None, np.float64(1.5), np.int64(2), np.bool_(True)]


def _stream(seed: int, n: int) -> list[tuple[dict[str, Any], Any]]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        x: dict[str, Any] = {f"f{j}": rng.gauss(0, 1) for j in range(rng.randint(0, 8))}
        if rng.random() < 0.1:
            x[f"f{rng.randrange(10)}"] = rng.choice(VALUES)  # another type (or the same)
        if rng.random() < 0.02:
            x[f"new{i}"] = 1.0  # a name seen once
        label = rng.choice([True, False, None, "a", "b", 1, 2.5] if i > 100 else [True, False])
        out.append((x, label))
    return out


def _signals(warnings: list[Any]) -> list[tuple[str, str, int, dict[str, Any]]]:
    return [(w.detector, w.signal, w.index, w.details) for w in warnings]


@pytest.mark.parametrize("task", ["classification", "regression"])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_check_many_equals_check_one_by_one(task: str, seed: int) -> None:
    stream = _stream(seed, 3_000)
    many, one = InputWatch(task), InputWatch(task)
    rng = random.Random(seed)
    got, want, k = [], [], 0
    while k < len(stream):
        size = rng.randrange(0, 200)
        got += many.check_many(stream[k : k + size], 10 + k)
        want += [w for j, (x, y) in enumerate(stream[k : k + size]) for w in one.check(x, y, 10 + k + j)]
        k += size
    assert _signals(got) == _signals(want)
    assert len({s[1].split(":")[0] for s in _signals(got)}) == (2 if task == "classification" else 1)
    assert pickle.dumps(many) == pickle.dumps(one)  # the shortcut's name cache is not part of the state


def test_a_name_known_as_another_kind_takes_the_full_check() -> None:
    watch = InputWatch("classification")
    assert watch.check_many([({"a": "x", "b": 1.0}, True)], 0) == []
    assert watch.check_many([({"a": None, "b": 2}, True)], 1) == []  # missing, and an int: no news
    (w,) = watch.check_many([({"a": 1.0, "b": 2.0}, True)], 2)  # "a" was text: a change
    assert (w.signal, w.index, w.details["was"], w.details["now"]) == (
        "feature_type:a",
        2,
        "string",
        "number",
    )
    (w,) = watch.check_many([({"a": 1.0, "b": True}, True)], 3)  # a bool is not a number (exact types)
    assert (w.signal, w.details["now"]) == ("feature_type:b", "bool")
    assert watch.check_many([({"a": 1.0, "b": True}, True)], 4) == []


def test_restored_state_without_the_cache_and_names_past_the_bound() -> None:
    watch = InputWatch("classification")
    watch.check_many([({"a": 1.0}, True)] * 3, 0)
    restored = pickle.loads(pickle.dumps(watch))
    assert "_numeric" not in restored.__dict__
    (w,) = restored.check_many([({"a": 1.0}, True), ({"a": "x"}, True)], 3)
    assert (w.signal, w.index) == ("feature_type:a", 4)
    full = InputWatch("regression")
    full.kinds = {f"n{i}": "number" for i in range(MAX_NAMES)}
    assert full.check_many([({"extra": 1.0}, 0.5), ({"extra": "x"}, 0.5)], 0) == []  # never remembered
    assert "extra" not in full.kinds and full.n == 2
