"""The examples in the schemas docstrings run."""

from __future__ import annotations

import doctest

import pytest

import schemas.codec
import schemas.validation


@pytest.mark.parametrize("module", [schemas.codec, schemas.validation])
def test_docstring_examples(module: object) -> None:
    failures, tried = doctest.testmod(module)  # type: ignore[arg-type]
    assert tried > 0
    assert failures == 0
