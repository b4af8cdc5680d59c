"""A long string value is named by its start and a digest in its one-hot key (found from outside, session 31: a
10,000-character categorical value became a 10,000-character weight name in the model, its checkpoints and every
release's ``what_changed``)."""

from __future__ import annotations

import pickle

from driftline.config import LearnerSpec
from learners.features import MAX_VALUE_CHARS, clean_features
from learners.specs import Learner


def test_short_values_keep_their_keys_and_long_ones_are_bounded_and_distinct() -> None:
    short = "v" * MAX_VALUE_CHARS
    assert clean_features({"s": short, "x": 1.0}) == {f"s={short}": 1.0, "x": 1.0}
    a, b = "a" * 10_000, "a" * 9_999 + "b"
    (ka,), (kb,) = clean_features({"s": a}), clean_features({"s": b})
    assert ka != kb and len(ka) < 100 and len(kb) < 100 and ka.startswith("s=" + "a" * 64)
    assert clean_features({"s": a}) == {ka: 1.0}  # the same value, the same key: learned like any category
    assert (
        len(next(iter(clean_features({"s": "\\ud800" + "z" * 200})))) < 100
    )  # a lone surrogate does not raise


def test_a_model_fed_long_values_learns_them_under_short_names() -> None:
    learner = Learner(LearnerSpec("logistic_regression"), "classification", 0)
    for i in range(200):
        value = ("long" * 3_000) + str(i % 2)
        learner.learn_one({"s": value, "x": float(i % 7)}, i % 2 == 0)
    assert learner.predict_one({"s": ("long" * 3_000) + "0", "x": 0.0}) is True
    assert len(pickle.dumps(learner)) < 5_000  # 24,000 characters of values would be in it at least twice
