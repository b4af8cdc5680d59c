"""Property/fuzz tests over every decoder: the codec (Avro and JSON, every record), the compiled binary decoders,
the validators and the JSON depth pre-scan. Whatever the bytes, a decoder returns a record or raises its documented
error (the codec: only SchemaError), never RecursionError, MemoryError, OverflowError, UnicodeDecodeError...

Run with ``--hypothesis-show-statistics`` to see how many cases each property ran.
"""

from __future__ import annotations

import contextlib
import json
import math
import struct
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from driftline.errors import SchemaError
from driftline.util import json_depth
from schemas.binary import Corrupt, compile_decoder
from schemas.codec import MAGIC, RECORDS, default_codec
from schemas.validation import Invalid, compile_record
from tests.corpus import common, for_record

CODEC = default_codec()
FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
JSON_TOPICS = {"FeatureEvent", "Label", "ControlCommand"}  # the records input topics accept as JSON


def _decode_is_total(record: str, data: bytes, allow_json: bool) -> dict | SchemaError:
    try:
        value = CODEC.decode(record, data, allow_json=allow_json)
    except SchemaError as exc:
        assert str(exc).startswith(record) or str(exc).startswith("topic "), str(exc)
        return exc
    assert isinstance(value, dict)
    return value


# -- bytes of every kind --------------------------------------------------------------------------------------


def _avro_like(record: str) -> st.SearchStrategy[bytes]:
    """Right magic and fingerprint, then arbitrary bytes: reaches the body decoders."""
    return st.binary(max_size=300).map(lambda body: MAGIC + CODEC.fingerprint(record) + body)


def _mutated_valid(record: str) -> st.SearchStrategy[bytes]:
    """A valid encoding with one byte changed, cut short or extended."""
    samples = {
        "FeatureEvent": {"id": "e", "ts": 1, "key": "k", "features": {"a": 1.5, "b": "x", "c": None, "d": 3}},
        "Label": {"id": "e", "ts": 1, "label": "yes"},
        "ControlCommand": {"model": "m", "command": "set", "args": {"alpha": "0.1"}, "ts": 1},
    }
    value = samples.get(record)
    if value is None:
        return st.just(b"")
    good = CODEC.encode(record, value)

    def mutate(args: tuple[int, int, int]) -> bytes:
        where, byte, how = args
        i = where % len(good)
        if how == 0:
            return good[:i] + bytes([byte]) + good[i + 1 :]
        if how == 1:
            return good[:i]
        return good + bytes([byte]) * (where % 50)

    return st.tuples(st.integers(0, 10_000), st.integers(0, 255), st.integers(0, 2)).map(mutate)


_json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
)
_json_values = st.recursive(
    _json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)


def _json_records(record: str) -> st.SearchStrategy[bytes]:
    """JSON objects with the record's field names and any values (NaN and Infinity included)."""
    names = [f["name"] for f in CODEC.schema(record)["fields"]] + ["extra"]
    return st.dictionaries(st.sampled_from(names), _json_values, max_size=len(names)).map(
        lambda obj: json.dumps(obj).encode()
    )


def _corpus(record: str) -> st.SearchStrategy[bytes]:
    return st.sampled_from(sorted(for_record(record).values()))


@pytest.mark.parametrize("record", RECORDS)
@FUZZ
@given(data=st.data(), allow_json=st.booleans())
def test_codec_decode_never_raises_anything_but_schema_error(
    record: str, data: Any, allow_json: bool
) -> None:
    payload = data.draw(
        st.one_of(
            st.binary(max_size=400),
            _avro_like(record),
            _mutated_valid(record),
            _json_records(record),
            _corpus(record),
        )
    )
    _decode_is_total(record, payload, allow_json)


@pytest.mark.parametrize("record", sorted(JSON_TOPICS))
@FUZZ
@given(
    values=st.lists(
        st.one_of(st.binary(max_size=200), _json_records("FeatureEvent"), _corpus("FeatureEvent"))
    )
)
def test_decode_many_returns_one_result_per_record(record: str, values: list[bytes]) -> None:
    out = CODEC.decode_many(record, values, allow_json=True)
    assert len(out) == len(values)
    assert all(isinstance(v, dict | SchemaError) for v in out)


@pytest.mark.parametrize("name", sorted(common()))
def test_every_common_corpus_payload_is_refused_for_every_record(name: str) -> None:
    payload = common()[name]
    for record in RECORDS:
        for allow_json in (True, False):
            assert isinstance(_decode_is_total(record, payload, allow_json), SchemaError), (record, name)


def test_record_specific_corpus_payloads_are_refused() -> None:
    for record in RECORDS:
        for name, payload in for_record(record).items():
            for allow_json in (True, False):
                result = _decode_is_total(record, payload, allow_json)
                assert isinstance(result, SchemaError), (record, name, result)


@pytest.mark.parametrize("record", ["FeatureEvent", "TrainingExample"])
def test_an_avro_map_naming_a_key_twice_is_refused_as_json_is(record: str) -> None:
    """Outside, session 42: an Avro ``features`` map naming ``x1`` twice was served with the last value, while the
    same in JSON is refused (readers disagree on which value wins). Refused the same way now, on the map's every
    path: after its layout was learned (the one-block shortcut), and with the duplicate in a second block."""
    fields: dict[str, Any] = {"id": "dup", "ts": 1}
    if record == "TrainingExample":
        fields = {
            "id": "dup",
            "model": "default",
            "key": None,
            "label": True,
            "prediction": None,
            "proba": None,
        }
        fields.update(version=1, event_ts=1, label_ts=2)
    good = CODEC.encode(record, {**fields, "features": {"x1": 0.1, "x2": 0.9}})
    for _ in range(3):  # the layout {x1, x2} is learned, and read by the shortcut
        assert CODEC.decode(record, good, allow_json=False)["features"] == {"x1": 0.1, "x2": 0.9}
    twice = good.replace(b"\x04x2\x06", b"\x04x1\x06")
    assert twice != good
    reason = str(_decode_is_total(record, twice, False))
    assert "duplicate key 'x1'" in reason and "features" in reason, reason
    # two blocks of one entry each (count 1, x1, count 1, x1, end)
    entry = b"\x04x1\x06" + struct.pack("<d", 0.1)
    one = CODEC.encode(record, {**fields, "features": {"x1": 0.1}})
    blocks = one.replace(b"\x02" + entry + b"\x00", b"\x02" + entry + b"\x02" + entry + b"\x00")
    assert blocks != one
    reason = str(_decode_is_total(record, blocks, False))
    assert "duplicate key 'x1'" in reason, reason


def test_reasons_are_clear() -> None:
    def reason(payload: bytes, record: str = "FeatureEvent") -> str:
        return str(_decode_is_total(record, payload, True))

    assert "nested deeper than 32 levels" in reason(b"[" * 100_000)
    assert "nested deeper than 32 levels" in reason(for_record("FeatureEvent")["nested_features"])
    assert "duplicate key 'id'" in reason(for_record("FeatureEvent")["duplicate_keys"])
    assert "exceeds the limit of 1048576 bytes" in reason(common()["over_1mb"])
    assert "NaN is not allowed" in reason(for_record("FeatureEvent")["json_nan"])
    text = reason(b"this is not json")
    assert "neither a JSON object nor Avro single-object encoding" in text and "Expecting value" in text
    assert "not Avro single-object encoding" in str(
        _decode_is_total("TrainingExample", b"this is not", False)
    )


# -- the compiled binary decoders and the validators ----------------------------------------------------------

_DECODERS = {name: compile_decoder(CODEC.schema(name)) for name in RECORDS}


@pytest.mark.parametrize("record", RECORDS)
@FUZZ
@given(body=st.binary(max_size=300))
@example(body=b"\xff" * 20)
@example(body=b"\x80" * 11)
def test_binary_decoder_raises_only_its_documented_errors(record: str, body: bytes) -> None:
    try:
        value, end = _DECODERS[record](body, 0)
    except (IndexError, struct.error, Corrupt, Invalid, UnicodeDecodeError):
        return
    assert isinstance(value, dict) and 0 <= end <= len(body)


_VALIDATORS = {name: compile_record(CODEC.schema(name), from_json=True) for name in RECORDS}


@pytest.mark.parametrize("record", RECORDS)
@FUZZ
@given(value=st.dictionaries(st.text(max_size=10), _json_values, max_size=8) | _json_values)
def test_validators_return_a_record_or_invalid(record: str, value: Any) -> None:
    try:
        out = _VALIDATORS[record](value)
    except Invalid as exc:
        assert exc.message
        return
    assert isinstance(out, dict)
    for v in out.values():  # nothing non-finite gets through
        assert not (isinstance(v, float) and not math.isfinite(v))


# -- the JSON depth pre-scan ----------------------------------------------------------------------------------


def _depth(value: Any) -> int:
    if isinstance(value, list):
        return 1 + max((_depth(v) for v in value), default=0)
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    return 0


@FUZZ
@given(value=_json_values, limit=st.integers(0, 8))
def test_json_depth_is_exact_over_the_limit_and_bounded_under_it(value: Any, limit: int) -> None:
    text = json.dumps(value)
    real = _depth(value)
    found = json_depth(text, limit)
    if found > limit:  # refused: the text really nests deeper than the limit
        assert found == real
    else:
        assert real <= limit


@FUZZ
@given(text=st.text(alphabet='[]{}"\\ax,:', max_size=200), limit=st.integers(0, 5))
def test_json_depth_on_any_text_never_fails_and_guards_the_parser(text: str, limit: int) -> None:
    depth = json_depth(text, limit)
    if depth <= limit:
        with contextlib.suppress(ValueError):  # invalid JSON is fine; a RecursionError would fail the test
            json.loads(text)
