"""``InputWatch.check`` answers the usual value types with a dict probe: the same kinds (and so the same warnings,
at the same labels) as ``_kind``'s isinstance chain, for every type a feature can hold, subclasses included."""

from __future__ import annotations

import random
from typing import Any

import numpy as np

from learners.drift import DriftSignal
from streams.watch import WARMUP, InputWatch, _kind


class Flag(int):  # a subclass: not in the probe's table, so it must take _kind's answer ("number")
    pass


VALUES: list[Any] = [
    0.5,
    3,
    True,
    False,
    "sunny",
    None,
    np.float64(1.5),
    np.int64(2),
    np.bool_(True),
    Flag(1),
    [1],
    b"x",
]


def _reference(watch_kinds: dict[str, str], features: dict[str, Any], index: int) -> list[DriftSignal]:
    out = []
    for name, value in features.items():
        kind = _kind(value)
        if kind == "null":
            continue
        was = watch_kinds.setdefault(name, kind)
        if was != kind:
            watch_kinds[name] = kind
            details = {"feature": name, "was": was, "now": kind, "value": repr(value)[:60]}
            out.append(DriftSignal("schema", f"feature_type:{name}", index, details))
    return out


def test_check_equals_the_isinstance_chain_on_mixed_types() -> None:
    rng = random.Random(11)
    watch = InputWatch("classification")
    kinds: dict[str, str] = {}
    warnings = 0
    for i in range(2_000):
        features = {f"f{j}": rng.choice(VALUES) for j in range(rng.randint(0, 6))}
        got = [w for w in watch.check(features, "a", i) if w.signal.startswith("feature_type")]
        want = _reference(kinds, features, i)
        assert [(w.signal, w.index, w.details) for w in got] == [(w.signal, w.index, w.details) for w in want]
        assert watch.kinds == kinds
        warnings += len(got)
    assert warnings > 100  # type changes did happen: the comparison above was not of empty lists


def test_subclasses_and_numpy_scalars_keep_their_kind() -> None:
    for value in VALUES:
        watch = InputWatch("classification")
        watch.check({"f": value}, None, 0)
        assert watch.kinds.get("f") == (None if value is None else _kind(value)), value
    watch = InputWatch("classification")
    for i in range(WARMUP):
        watch.check({"f": 1.0}, "a", i)
    (warning,) = watch.check({"f": True}, "b", WARMUP)[:1]
    assert warning.signal == "feature_type:f" and warning.details["now"] == "bool"
