"""Property tests: every record survives Avro (and, on input topics, JSON) unchanged, types included."""

from __future__ import annotations

import io
from typing import Any

import pytest
from fastavro import schemaless_reader, schemaless_writer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas import INPUT_TOPICS, RECORDS, TOPIC_RECORDS, Codec, default_codec

LONGS = st.integers(min_value=-(2**63), max_value=2**63 - 1)
DOUBLES = st.floats(allow_nan=False, allow_infinity=False)
PRIMITIVES: dict[str, st.SearchStrategy[Any]] = {
    "null": st.none(),
    "boolean": st.booleans(),
    "long": LONGS,
    "int": st.integers(min_value=-(2**31), max_value=2**31 - 1),
    "double": DOUBLES,
    "string": st.text(max_size=20),
    "bytes": st.binary(max_size=40),
}


def strategy_for(schema: Any) -> st.SearchStrategy[Any]:
    """Values valid for an Avro type, built from the ``.avsc`` so new fields are covered automatically."""
    if isinstance(schema, str):
        return PRIMITIVES[schema]
    if isinstance(schema, list):
        return st.one_of(*[strategy_for(b) for b in schema])
    if schema["type"] == "map":
        return st.dictionaries(st.text(max_size=12), strategy_for(schema["values"]), max_size=8)
    if schema["type"] == "record":
        required = {f["name"]: strategy_for(f["type"]) for f in schema["fields"] if "default" not in f}
        optional = {f["name"]: strategy_for(f["type"]) for f in schema["fields"] if "default" in f}
        return st.fixed_dictionaries(required, optional=optional)
    return PRIMITIVES[schema["type"]]


def assert_same(a: Any, b: Any, path: str = "") -> None:
    """Equality that also checks types, so True/1 or 1/1.0 confusions fail."""
    assert type(a) is type(b), f"{path}: {type(a).__name__} {a!r} != {type(b).__name__} {b!r}"
    if isinstance(a, dict):
        assert a.keys() == b.keys(), path
        for k in a:
            assert_same(a[k], b[k], f"{path}[{k!r}]")
    else:
        assert a == b, f"{path}: {a!r} != {b!r}"


CODEC = default_codec()
STRATEGIES = {name: strategy_for(CODEC.schema(name)) for name in RECORDS}
JSON_RECORDS = sorted(TOPIC_RECORDS[t] for t in INPUT_TOPICS)
PROPS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def test_every_contract_record_has_a_schema() -> None:
    assert set(RECORDS) == set(TOPIC_RECORDS.values())
    assert len(RECORDS) == 8
    for name in RECORDS:
        schema = CODEC.schema(name)
        assert schema["name"] == name
        assert schema["namespace"] == "driftline"


@pytest.mark.parametrize("record", RECORDS)
@PROPS
@given(data=st.data())
def test_avro_round_trip(record: str, data: st.DataObject) -> None:
    value = data.draw(STRATEGIES[record])
    clean = CODEC.validate(record, value)
    encoded = CODEC.encode(record, value)
    assert encoded[:2] == b"\xc3\x01"
    assert encoded[2:10] == CODEC.fingerprint(record)
    assert_same(CODEC.decode(record, encoded), clean)
    # Every field is present after validation: defaults are filled in.
    assert list(clean) == [f["name"] for f in CODEC.schema(record)["fields"]]


@pytest.mark.parametrize("record", RECORDS)
@PROPS
@given(data=st.data())
def test_avro_body_matches_fastavro(record: str, data: st.DataObject) -> None:
    """The bytes after the header are exactly what fastavro writes, and fastavro reads them back."""
    clean = CODEC.validate(record, data.draw(STRATEGIES[record]))
    encoded = CODEC.encode(record, clean)
    buf = io.BytesIO()
    schemaless_writer(buf, CODEC.schema(record), clean)
    assert encoded[10:] == buf.getvalue()
    assert_same(schemaless_reader(io.BytesIO(encoded[10:]), CODEC.schema(record), None), clean)


@pytest.mark.parametrize("record", RECORDS)
@PROPS
@given(data=st.data())
def test_json_round_trip(record: str, data: st.DataObject) -> None:
    """encode_json output decodes back to the same record (bytes travel as base64)."""
    value = data.draw(STRATEGIES[record])
    clean = CODEC.validate(record, value)
    assert_same(CODEC.decode(record, CODEC.encode_json(record, value), allow_json=True), clean)


@pytest.mark.parametrize("record", JSON_RECORDS)
@PROPS
@given(data=st.data())
def test_json_input_decodes_like_avro(record: str, data: st.DataObject) -> None:
    value = data.draw(STRATEGIES[record])
    from_json = CODEC.decode(record, CODEC.encode_json(record, value), topic="t", allow_json=True)
    from_avro = CODEC.decode(record, CODEC.encode(record, value), topic="t")
    assert_same(from_json, from_avro)


@PROPS
@given(data=st.data())
def test_decode_many_matches_decode(data: st.DataObject) -> None:
    values = data.draw(st.lists(STRATEGIES["FeatureEvent"], max_size=10))
    blobs = [CODEC.encode("FeatureEvent", v) for v in values]
    blobs.insert(len(blobs) // 2, b"garbage")
    out = CODEC.decode_many("FeatureEvent", blobs)
    assert len(out) == len(blobs)
    for blob, got in zip(blobs, out, strict=True):
        if blob == b"garbage":
            assert isinstance(got, ValueError)
        else:
            assert_same(got, CODEC.decode("FeatureEvent", blob))


def test_default_codec_is_shared_and_equivalent_to_a_fresh_one() -> None:
    assert default_codec() is default_codec()
    fresh = Codec()
    for name in RECORDS:
        assert fresh.fingerprint(name) == CODEC.fingerprint(name)
