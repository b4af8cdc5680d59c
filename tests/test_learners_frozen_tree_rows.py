"""A frozen Hoeffding tree's answers for many rows at once (``learners.frozen_tree.FrozenTreeRows``, used by
``BatchContext`` for the sentinel's copies, the served snapshot and probation's previous model) are River's answers
to the bit, and ``learn_batch`` with them makes the same releases, alarms and verdicts as ``learn_one``.

Why exact and not within tolerance: the frozen answers feed the sentinel's 0/1 errors, the evaluators and the loss
detector; the rows path claims River's arithmetic in River's order, so any difference is a bug, not rounding.
"""

from __future__ import annotations

import dataclasses
import math
import random
from typing import Any

import numpy as np
import pytest

from driftline.config import GuardConfig, LearnerSpec
from learners import batch as batch_mod
from learners import frozen_tree
from learners.drift import DriftSignal
from learners.features import clean_features
from learners.lifecycle import Labelled, ModelLifecycle
from learners.specs import build_learner
from learners.synthetic import synthetic_stream
from tests.test_learners_learn_batch import FAST_SENTINEL, _outcome, _run_batch, _run_one


def test_squares_are_pythons_pow() -> None:
    rng = random.Random(7)
    values = [rng.uniform(-1e3, 1e3) * 10.0 ** rng.randint(-12, 12) for _ in range(200_000)]
    values += [0.0, -0.0, 1.0, 2.0**-20, 2.0**40, 3.0, 1e150, -1e150, 5e-324, 1.5]
    got = frozen_tree._squares(np.array(values)).tolist()
    assert got == [v**2 for v in values]


def test_a_square_that_overflows_is_infinite_not_raised() -> None:
    got = frozen_tree._squares(np.array([1e200, -3e160, 2.0]))
    assert math.isinf(got[0]) and math.isinf(got[1]) and got[2] == 4.0


def _stream(n: int, seed: int, classes: int) -> list[tuple[dict[str, float], Any]]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        x = {f"f{k}": rng.gauss(0, 1 + k) for k in range(6)}
        s = x["f0"] + 0.5 * x["f1"] - 0.2 * x["f3"] + rng.gauss(0, 0.5)
        y = int(s > 0) if classes == 2 else ("a" if s < -1 else "b" if s < 1.5 else "c")
        out.append((x, y))
    return out


@pytest.mark.parametrize(("seed", "classes"), [(1, 2), (2, 2), (3, 3), (4, 3)])
def test_rows_equal_the_learner_exactly(seed: int, classes: int) -> None:
    rows = _stream(4000, seed, classes)
    learner = build_learner(LearnerSpec("hoeffding_tree"))
    for x, y in rows[:3000]:
        learner.learn_one(x, y)
    rows_path = frozen_tree.frozen_tree_rows(learner)
    assert rows_path is not None
    xs = [clean_features(x) for x, _ in rows[3000:]]
    rng = random.Random(seed)
    for k in rng.sample(range(len(xs)), 40):  # far outside the training range: terms near 0 and -inf
        xs[k] = {n: v * rng.choice([1e3, 1e6, 1e11]) for n, v in xs[k].items()}
    names = tuple(xs[0])
    got = rows_path.predict(xs, names, np.array([list(x.values()) for x in xs]))
    answered = 0
    per_row = frozen_tree.frozen_tree_predictor(learner)  # the served snapshot's path, one row at a time
    assert per_row is not None
    for x, g in zip(xs, got, strict=True):
        want = learner.predict_with_proba(x, cleaned=True)
        assert per_row(x) == want
        if g is not None:
            answered += 1
            assert g == want  # labels and probabilities, to the bit
    assert answered > 0.9 * len(xs)
    # Rows missing a feature are still answered as River answers them (the absent terms add nothing).
    partial = [{n: v for n, v in x.items() if n != "f0"} for x in xs[:200]]
    pnames = tuple(partial[0])
    pgot = rows_path.predict(partial, pnames, np.array([list(x.values()) for x in partial]))
    for x, g in zip(partial, pgot, strict=True):
        if g is not None:
            assert g == learner.predict_with_proba(x, cleaned=True)


def _float_examples(seed: int) -> list[Labelled]:
    """sea-abrupt with float features only (so the batch's rows reach ``FrozenTreeRows``), with the served answer
    current, stale or missing as a scorer would leave it."""
    rows, _drifts = synthetic_stream("sea-abrupt", 2400, seed=seed)
    rng = random.Random(seed)
    out = []
    for i, (_id, _ts, x, y) in enumerate(rows):
        xf = {f"x{k}": float(v) for k, v in x.items()}
        if 1500 <= i < 1650:
            y = not y
        roll = rng.random()
        if roll < 0.3:
            out.append(Labelled(xf, y, index=i, ts=i))
        else:  # a stale answer (version 1): the served snapshot is predicted for it
            out.append(Labelled(xf, y, served_prediction=y, served_version=1, index=i, ts=i))
    return out


@pytest.mark.parametrize("seed", [3, 8])
def test_learn_batch_with_tree_rows_matches_learn_one(seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = {"rows": 0}
    original = frozen_tree.FrozenTreeRows.predict

    def counted(self: Any, *args: Any) -> Any:
        calls["rows"] += 1
        return original(self, *args)

    monkeypatch.setattr(frozen_tree.FrozenTreeRows, "predict", counted)
    spec = LearnerSpec("hoeffding_tree")
    drift = dataclasses.replace(FAST_SENTINEL, sentinel_threshold=2.0)

    def lifecycle() -> ModelLifecycle:
        lc = ModelLifecycle("m", "classification", spec, None, drift, GuardConfig(), release_every=25)
        lc.initial_release()
        return lc

    examples = _float_examples(seed)
    one, batched = lifecycle(), lifecycle()
    a, b = _run_one(one, examples), _run_batch(batched, examples, seed=seed)
    assert [_outcome(r) for r in b] == [_outcome(r) for r in a]
    assert calls["rows"] > 0, "the batch must have predicted rows ahead"
    events = [e for r in a if isinstance(r, list) for e in r]
    assert one.served_version > 5
    assert any(isinstance(e, DriftSignal) and e.details.get("test") == "frozen_snapshot" for e in events)
    for x in [e.x for e in examples[-300:]]:
        assert batched.served_model.predict_with_proba(x) == one.served_model.predict_with_proba(x)
        assert batched.champion.predict_with_proba(x) == one.champion.predict_with_proba(x)
    assert batch_mod.BatchContext.TREE_RUN > 1
