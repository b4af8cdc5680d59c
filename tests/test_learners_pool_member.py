"""A pool member on raw feature products (``logistic_regression`` with ``degree: 2, products: raw``), session 20.

The default quadratic member multiplies scaled (centred) features; ``products: raw`` multiplies the raw ones as
River's ``PolynomialExtender(2) | StandardScaler | LogisticRegression`` does, and can be named in ``auto``'s
``members`` (BENCHMARKS-accuracy.md, session 20: a fourth pool member).
"""

from __future__ import annotations

import random

import pytest
from river import feature_extraction, linear_model, preprocessing

from driftline.config import LearnerSpec
from driftline.errors import LearnerError
from learners.specs import build_learner


def _river_qlr():
    return (
        feature_extraction.PolynomialExtender(2)
        | preprocessing.StandardScaler()
        | linear_model.LogisticRegression()
    )


def _agreement(products: str) -> tuple[float, float]:
    """(largest probability gap, share of equal answers) against River's QLR from label 100 on."""
    model = build_learner(LearnerSpec("logistic_regression", {"degree": 2, "products": products}))
    river = _river_qlr()
    rng = random.Random(3)
    gap, agree = 0.0, 0
    for i in range(2000):
        x = {"a": rng.random(), "b": rng.random(), "c": rng.random()}
        y = int(x["a"] * x["b"] + 0.3 * x["c"] > 0.4)
        if i >= 100:
            p, q = model.predict_proba_one(x).get(1, 0.5), river.predict_proba_one(x).get(True, 0.5)
            gap, agree = max(gap, abs(p - q)), agree + ((p > 0.5) == (q > 0.5))
        model.learn_one(x, y)
        river.learn_one(x, y == 1)
    return gap, agree / 1900


def test_raw_products_answer_as_rivers_polynomial_extender_and_centred_ones_do_not() -> None:
    gap, agree = _agreement("raw")
    assert gap < 1e-6 and agree == 1.0
    gap, agree = _agreement("centred")  # the default: products of the scaled features, another model
    assert gap > 0.1 and agree < 0.99


def test_products_is_checked_and_a_pool_can_hold_a_raw_product_member() -> None:
    with pytest.raises(LearnerError, match="products must be centred, raw"):
        build_learner(LearnerSpec("logistic_regression", {"degree": 2, "products": "squares"}))
    members = [
        {"name": "logistic_regression"},
        {"name": "logistic_regression", "params": {"degree": 2}},
        {"name": "hoeffding_tree"},
        {"name": "logistic_regression", "params": {"degree": 2, "products": "raw"}},
    ]
    pool = build_learner(LearnerSpec("auto", {"members": members}))
    rng = random.Random(1)
    for _ in range(300):
        a, b = rng.random(), rng.random()
        pool.learn_one({"a": a, "b": b}, int(a * b > 0.25))
    assert len(pool.model.members) == 4 and pool.predict_one({"a": 0.9, "b": 0.9}) == 1
    wide = build_learner(LearnerSpec("auto", {"members": members}))
    wide.learn_one({f"f{i}": float(i) for i in range(13)}, 1)  # both quadratic members are dropped
    assert [m.spec.params.get("degree", 1) for m in wide.model.members] == [1, 1]
