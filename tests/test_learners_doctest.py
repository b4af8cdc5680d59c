"""The runnable examples in the docstrings of the learners (and of the helpers they share)."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "learners.features",
    "learners.specs",
    "learners.evaluation",
    "learners.synthetic",
    "driftline.util",
]


@pytest.mark.parametrize("name", MODULES)
def test_doctests(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name))
    assert result.attempted > 0 and result.failed == 0
