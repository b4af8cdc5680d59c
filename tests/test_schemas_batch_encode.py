"""Codec.encode_batch: the same bytes as encode(complete=True) per record, shared fields encoded once, and a bad
record's SchemaError in its own slot (the rest of the batch encoded)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from driftline.errors import SchemaError
from schemas.codec import Codec, default_codec

CODEC = default_codec()
SHARED = {"model": "m", "version": 4, "scored_at": 123, "explanation": None, "explanation_method": None}

feature = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**63), 2**63 - 1), st.floats(-1e9, 1e9), st.text(max_size=5)
)
prediction = st.fixed_dictionaries(
    {
        "id": st.text(max_size=8),
        "ts": st.integers(0, 2**62),
        "prediction": st.one_of(
            st.none(), st.booleans(), st.integers(-5, 5), st.floats(-3, 3), st.text(max_size=3)
        ),
        "proba": st.one_of(st.none(), st.dictionaries(st.text(max_size=3), st.floats(0, 1), max_size=3)),
        "features": st.dictionaries(st.text(max_size=4), feature, max_size=6),
        "key": st.one_of(st.none(), st.text(max_size=4)),
    }
)


@settings(max_examples=100, deadline=None)
@given(values=st.lists(prediction, max_size=10))
def test_same_bytes_as_encode_complete(values: list[dict[str, Any]]) -> None:
    got = CODEC.encode_batch("Prediction", values, SHARED, topic="predictions")
    assert got == [CODEC.encode("Prediction", {**v, **SHARED}, complete=True) for v in values]
    for v, data in zip(values, got, strict=True):
        assert CODEC.decode("Prediction", data) == {**v, **SHARED}


def test_a_bad_record_fails_alone_with_the_usual_error() -> None:
    good = {"id": "a", "ts": 1, "prediction": True, "proba": None, "features": {"x": 1.0}, "key": None}
    missing = {k: v for k, v in good.items() if k != "ts"}
    wrong = {**good, "features": {"x": [1, 2]}}
    values = [good, missing, wrong, good]
    got = CODEC.encode_batch("Prediction", values, SHARED, topic="predictions")
    assert got[0] == got[3] == CODEC.encode("Prediction", {**good, **SHARED})
    for i in (1, 2):
        assert isinstance(got[i], SchemaError)
        with pytest.raises(SchemaError) as exc:
            CODEC.encode("Prediction", {**values[i], **SHARED}, topic="predictions", complete=True)
        assert str(got[i]) == str(exc.value)
    assert "ts" in str(got[1]) and "features" in str(got[2])


def test_too_large_and_bad_shared_values() -> None:
    small = Codec(max_record_bytes=200)
    big = {"id": "b", "ts": 1, "prediction": None, "proba": None, "features": {"x": "y" * 300}, "key": None}
    ok = {**big, "features": {}}
    got = small.encode_batch("Prediction", [big, ok], SHARED)
    assert isinstance(got[0], SchemaError) and "exceeds the limit of 200 bytes" in str(got[0])
    assert got[1] == small.encode("Prediction", {**ok, **SHARED})
    bad_shared = {**SHARED, "version": "four"}
    got = CODEC.encode_batch("Prediction", [ok], bad_shared)
    assert isinstance(got[0], SchemaError) and "version" in str(got[0])
