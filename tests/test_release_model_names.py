"""A release is refused when its ``model`` cannot name a model, even when signed with the key.

Found from outside (session 27): a release for model ``../y``, signed with the real key, was verified and loaded by
a scorer (``loaded ..x/../y``). A model name goes into Redis keys, file names and metric labels; only a key holder
can make such a release, but nothing should load it.
"""

from __future__ import annotations

from typing import Any

import pytest

from driftline.config import LearnerSpec
from learners.artifacts import build_release
from learners.specs import build_learner
from streams.releases import verify_problem

KEY = b"release-names-signing-key-0123456789abcdef"


def _release(name: str) -> dict[str, Any]:
    model = build_learner(LearnerSpec("logistic_regression"), "classification", 0)
    model.learn_one({"a": 1.0}, True)
    model.learn_one({"a": -1.0}, False)
    return build_release(
        model, name=name, version=3, parent=2, reason="manual", metrics={}, key=KEY, n_learned=2
    )


def test_a_signed_release_of_a_valid_name_verifies() -> None:
    assert verify_problem(_release("churn-v2.eu_1"), KEY) is None


@pytest.mark.parametrize("name", ["../y", "x/../y", "a..b", "-lead", "x" * 65, "a b", "é"])
def test_a_signed_release_whose_model_cannot_name_a_model_is_refused(name: str) -> None:
    problem = verify_problem(_release(name), KEY)
    assert problem is not None and problem[0] == "model" and "invalid model name" in problem[1]


def test_a_release_without_a_string_model_is_refused_not_raised() -> None:
    release = _release("ok")
    release["model"] = None
    assert verify_problem(release, KEY) == ("model", "invalid model name None")
