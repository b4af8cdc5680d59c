"""Codec behaviour: wire format, validation errors that name topic/record/field/value, JSON input, limits."""

from __future__ import annotations

import json
import math
import os
import struct
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from driftline.errors import DriftlineError, SchemaError
from schemas import INPUT_TOPICS, RECORDS, TOPIC_RECORDS, Codec, default_codec, schema_fingerprint

CODEC = default_codec()
TOPIC = "driftline.features"


def feature_event(**features: object) -> dict:
    return {"id": "e1", "ts": 1_700_000_000_000, "features": features or {"x": 1.5}}


def reference_rabin(data: bytes) -> int:
    """The Avro spec's reference CRC-64-AVRO (Rabin) fingerprint, written out independently of fastavro."""
    empty = 0xC15D213AA4D7A795
    table = []
    for i in range(256):
        fp = i
        for _ in range(8):
            fp = (fp >> 1) ^ (empty & -(fp & 1))
        table.append(fp)
    fp = empty
    for byte in data:
        fp = (fp >> 8) ^ table[(fp ^ byte) & 0xFF]
    return fp


def test_topic_tables_match_the_contract() -> None:
    assert TOPIC_RECORDS == {
        "features": "FeatureEvent",
        "labels": "Label",
        "predictions": "Prediction",
        "training": "TrainingExample",
        "models": "ModelRelease",
        "drift": "DriftEvent",
        "control": "ControlCommand",
        "deadletter": "DeadLetter",
    }
    assert frozenset({"features", "labels", "control"}) == INPUT_TOPICS


def test_fingerprint_is_little_endian_crc64_avro() -> None:
    # Known vector from the Avro test suites: "int" -> 8f5c393f1ad57572 in wire (little-endian) order.
    assert schema_fingerprint("int").hex() == "8f5c393f1ad57572"
    assert schema_fingerprint("int") == reference_rabin(b'"int"').to_bytes(8, "little")
    # For the records: the fingerprint is over the parsing canonical form, so docs do not matter.
    schema = CODEC.schema("Label")
    canonical = (
        '{"name":"driftline.Label","type":"record","fields":[{"name":"id","type":"string"},'
        '{"name":"ts","type":"long"},{"name":"label","type":["boolean","long","double","string"]}]}'
    )
    assert CODEC.fingerprint("Label") == reference_rabin(canonical.encode()).to_bytes(8, "little")
    undocumented = json.loads(json.dumps(schema))
    undocumented.pop("doc")
    assert schema_fingerprint(undocumented) == CODEC.fingerprint("Label")


def test_single_object_layout() -> None:
    data = CODEC.encode("Label", {"id": "a", "ts": 3, "label": 7})
    # C3 01, fingerprint, body: string "a" (zigzag len 02), long 3 (06), union branch 1 (02), long 7 (0e)
    assert data == b"\xc3\x01" + CODEC.fingerprint("Label") + bytes([0x02, ord("a"), 0x06, 0x02, 0x0E])


def test_fingerprints_differ_per_record() -> None:
    assert len({CODEC.fingerprint(r) for r in RECORDS}) == len(RECORDS)


def test_schema_error_is_a_value_error_and_driftline_error() -> None:
    with pytest.raises(SchemaError) as info:
        CODEC.encode("FeatureEvent", {"id": "e"})
    assert isinstance(info.value, ValueError)
    assert isinstance(info.value, DriftlineError)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (
            feature_event(x=math.nan),
            "topic driftline.features: FeatureEvent.features['x']: NaN is not allowed",
        ),
        (feature_event(x=math.inf), "FeatureEvent.features['x']: inf is not allowed"),
        (feature_event(y=-math.inf), "FeatureEvent.features['y']: -inf is not allowed"),
        (
            feature_event(x=[1]),
            "FeatureEvent.features['x']: expected null | boolean | long | double | string",
        ),
        (feature_event(x=2**64), "FeatureEvent.features['x']: 18446744073709551616 is out of range for long"),
        ({"id": "e", "ts": "1", "features": {}}, "FeatureEvent.ts: expected long, got str '1'"),
        ({"id": "e", "ts": True, "features": {}}, "FeatureEvent.ts: expected long, got bool True"),
        ({"id": "e", "ts": 1.5, "features": {}}, "FeatureEvent.ts: expected long, got float 1.5"),
        ({"id": 5, "ts": 1, "features": {}}, "FeatureEvent.id: expected string, got int 5"),
        ({"id": "e", "features": {}}, "FeatureEvent.ts: required field is missing"),
        ({"id": "e", "ts": 1, "features": []}, "FeatureEvent.features: expected map (object), got list []"),
        ({"id": "e", "ts": 1, "features": {3: 1.0}}, "FeatureEvent.features[3]: map keys must be strings"),
        (
            {"id": "e", "ts": 1, "key": 4, "features": {}},
            "FeatureEvent.key: expected null | string, got int 4",
        ),
    ],
)
def test_validation_errors_name_topic_record_field_and_value(value: dict, message: str) -> None:
    with pytest.raises(SchemaError) as info:
        CODEC.encode("FeatureEvent", value, topic=TOPIC)
    assert message in str(info.value)
    assert str(info.value).startswith(f"topic {TOPIC}: FeatureEvent")


@pytest.mark.parametrize(
    ("record", "value", "message"),
    [
        ("Label", {"id": "a", "ts": 1, "label": math.nan}, "Label.label: NaN is not allowed"),
        (
            "Label",
            {"id": "a", "ts": 1, "label": None},
            "Label.label: expected boolean | long | double | string",
        ),
        (
            "Prediction",
            {"id": "a", "ts": 1, "model": "m", "version": 1, "prediction": 1, "proba": {"a": math.inf}},
            "Prediction.proba['a']: inf is not allowed",
        ),
        (
            "ModelRelease",
            {
                "model": "m",
                "version": 1,
                "created_at": 0,
                "reason": "initial",
                "metrics": {"acc": math.nan},
                "format": "f",
                "sha256": "",
                "signature": "",
            },
            "ModelRelease.metrics['acc']: NaN is not allowed",
        ),
        ("DriftEvent", {"model": "m"}, "DriftEvent.version: required field is missing"),
        (
            "ControlCommand",
            {"model": "m", "command": "set", "args": {"a": 1}, "ts": 1},
            "ControlCommand.args['a']: expected string, got int 1",
        ),
        (
            "DeadLetter",
            {"source_topic": "t", "partition": 0, "offset": 0, "value": "text", "error": "e", "ts": 1},
            "DeadLetter.value: expected bytes, got str 'text'",
        ),
    ],
)
def test_validation_errors_other_records(record: str, value: dict, message: str) -> None:
    with pytest.raises(SchemaError, match=message.replace("[", r"\[").replace("|", r"\|")):
        CODEC.validate(record, value)


def test_validate_normalizes_and_fills_defaults() -> None:
    import numpy as np

    value = {
        "id": "a",
        "ts": np.int64(5),
        "model": "m",
        "version": 2,
        "prediction": np.float64(0.5),
        "proba": {"a": 1, "b": np.float32(0.25)},
        "extra": "dropped",
    }
    clean = CODEC.validate("Prediction", value)
    assert clean == {
        "id": "a",
        "ts": 5,
        "model": "m",
        "version": 2,
        "prediction": 0.5,
        "proba": {"a": 1.0, "b": 0.25},
        "features": {},
        "key": None,
        "scored_at": 0,
        "explanation": None,
        "explanation_method": None,
    }
    assert type(clean["ts"]) is int
    assert type(clean["proba"]["a"]) is float
    # A copy: the caller's dict and the default {} are not shared.
    clean["features"]["x"] = 1
    assert CODEC.validate("Prediction", value)["features"] == {}
    assert "extra" in value


def test_bool_and_int_keep_their_union_branch() -> None:
    ev = CODEC.decode(
        "FeatureEvent", CODEC.encode("FeatureEvent", feature_event(b=True, i=1, f=1.0, s="1", n=None))
    )
    assert [type(v) for v in ev["features"].values()] == [bool, int, float, str, type(None)]


def test_truncated_avro_is_rejected() -> None:
    data = CODEC.encode("FeatureEvent", feature_event(x=1.5, y=2.5))
    for cut in (1, 5, 11, len(data) - 1):
        with pytest.raises(SchemaError, match=r"topic driftline\.features: FeatureEvent: truncated"):
            CODEC.decode("FeatureEvent", data[:cut], topic=TOPIC)


def test_trailing_bytes_are_rejected() -> None:
    data = CODEC.encode("Label", {"id": "a", "ts": 1, "label": "x"})
    with pytest.raises(SchemaError, match="1 trailing bytes"):
        CODEC.decode("Label", data + b"\x00")


def test_random_bytes_are_rejected_never_crash() -> None:
    rng = __import__("random").Random(7)
    for i in range(3000):
        body = rng.randbytes(rng.randrange(0, 64))
        data = body if i % 2 else b"\xc3\x01" + CODEC.fingerprint("FeatureEvent") + body
        try:
            value = CODEC.decode("FeatureEvent", data, topic=TOPIC, allow_json=True)
        except SchemaError as exc:
            assert str(exc).startswith(f"topic {TOPIC}: FeatureEvent")
        else:  # the odd random body is valid Avro; then it must be a valid record too
            assert CODEC.validate("FeatureEvent", value) == value


def test_unknown_fingerprint_is_named() -> None:
    data = b"\xc3\x01" + bytes.fromhex("0102030405060708") + b"\x00"
    with pytest.raises(SchemaError, match="unknown writer schema fingerprint 0x0102030405060708"):
        CODEC.decode("FeatureEvent", data, topic=TOPIC)


def test_wrong_record_type_is_named() -> None:
    data = CODEC.encode("Label", {"id": "a", "ts": 1, "label": "x"})
    with pytest.raises(SchemaError, match="holds a Label, not a FeatureEvent"):
        CODEC.decode("FeatureEvent", data)


def test_nan_from_a_foreign_avro_writer_is_rejected_on_decode() -> None:
    # Hand-built body: id "e", ts 1, key null, features {"x": NaN} (union branch 3 = double).
    body = b"\x02e" + b"\x02" + b"\x00" + b"\x02" + b"\x02x" + b"\x06" + struct.pack("<d", math.nan) + b"\x00"
    data = b"\xc3\x01" + CODEC.fingerprint("FeatureEvent") + body
    with pytest.raises(SchemaError, match=r"FeatureEvent.features\['x'\]: NaN is not allowed"):
        CODEC.decode("FeatureEvent", data, topic=TOPIC)


def test_json_input_conveniences() -> None:
    before = time.time_ns() // 1_000_000
    ev = CODEC.decode(
        "FeatureEvent", b' \n{"id": "e", "features": {"i": 3, "f": 3.0, "b": false}}', allow_json=True
    )
    assert before <= ev["ts"] <= time.time_ns() // 1_000_000
    assert ev["key"] is None
    assert [type(v) for v in ev["features"].values()] == [int, float, bool]
    label = CODEC.decode("Label", b'{"id": "e", "label": 1}', allow_json=True)
    assert label["label"] == 1 and type(label["label"]) is int
    cmd = CODEC.decode(
        "ControlCommand", b'{"model": "m", "command": "promote", "args": {"version": "3"}}', allow_json=True
    )
    assert cmd["args"] == {"version": "3"} and cmd["id"] == ""
    # Ints are accepted where a double is expected and become floats.
    pred = CODEC.decode(
        "Prediction",
        b'{"id":"a","ts":1,"model":"m","version":1,"prediction":null,"proba":{"a":1}}',
        allow_json=True,
    )
    assert type(pred["proba"]["a"]) is float


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b'{"id": "e", "features": {"x": NaN}}', "FeatureEvent.features['x']: NaN is not allowed"),
        (b'{"id": "e", "features": {"x": -Infinity}}', "FeatureEvent.features['x']: -inf is not allowed"),
        (b'{"id": "e", "ts": "now", "features": {}}', "FeatureEvent.ts: expected long, got str 'now'"),
        (b'{"id": "e"}', "FeatureEvent.features: required field is missing"),
        (b'{"id": "\xff"}', "FeatureEvent: JSON is not valid UTF-8"),
        (b"[1, 2]", "FeatureEvent: JSON value is not an object but list"),
        (b'"text"', "FeatureEvent: JSON value is not an object but str"),
        (b'{"id": ', "FeatureEvent: invalid JSON"),
        (b"", "FeatureEvent: empty message"),
    ],
)
def test_bad_json_is_rejected_with_names(data: bytes, message: str) -> None:
    with pytest.raises(SchemaError) as info:
        CODEC.decode("FeatureEvent", data, topic=TOPIC, allow_json=True)
    assert str(info.value).startswith(f"topic {TOPIC}: {message}")


def test_json_refused_unless_allowed() -> None:
    with pytest.raises(SchemaError, match="JSON is not accepted here"):
        CODEC.decode("Prediction", b'{"id": "a"}', topic="driftline.predictions")


def test_size_limit_both_ways() -> None:
    small = Codec(max_record_bytes=200)
    big = feature_event(**{f"feature_{i}": float(i) for i in range(40)})
    with pytest.raises(SchemaError, match=r"record of \d+ bytes exceeds the limit of 200 bytes"):
        small.encode("FeatureEvent", big, topic=TOPIC)
    with pytest.raises(SchemaError, match="exceeds the limit of 200 bytes"):
        small.encode_json("FeatureEvent", big)
    with pytest.raises(SchemaError, match="exceeds the limit of 200 bytes"):
        small.decode("FeatureEvent", CODEC.encode("FeatureEvent", big))
    assert CODEC.decode("FeatureEvent", CODEC.encode("FeatureEvent", big))["features"]["feature_39"] == 39.0
    artifact = os.urandom(2 << 20)
    release = {
        "model": "m",
        "version": 1,
        "created_at": 0,
        "reason": "initial",
        "metrics": {},
        "format": "pickle+zlib",
        "artifact": artifact,
        "sha256": "",
        "signature": "",
    }
    with pytest.raises(SchemaError, match="ModelRelease: record of"):
        CODEC.encode("ModelRelease", release)


@pytest.mark.parametrize("record", ["FeatureEvent", "Label", "Prediction", "TrainingExample"])
def test_an_id_over_the_limit_of_utf8_bytes_is_refused_every_way(record: str) -> None:
    from schemas.codec import MAX_ID_BYTES
    from tests.fault_helpers import SCHEMAS, avro_with

    base = {
        "FeatureEvent": {"ts": 1, "key": None, "features": {"x1": 1.0}},
        "Label": {"ts": 1, "label": True},
        "Prediction": {"ts": 1, "model": "m", "version": 1, "prediction": True, "proba": None},
        "TrainingExample": {"model": "m", "features": {}, "label": True, "prediction": None, "version": 1,
                            "event_ts": 1, "label_ts": 1},
    }[record]  # fmt: skip
    at_limit = dict(base, id="é" * (MAX_ID_BYTES // 2))  # 2 bytes a character: exactly the limit, accepted
    assert CODEC.decode(record, CODEC.encode(record, at_limit))["id"] == at_limit["id"]
    over = dict(base, id="é" * (MAX_ID_BYTES // 2) + "x")  # one byte over
    message = rf"{record}\.id: id of {MAX_ID_BYTES + 1} bytes is over the limit of {MAX_ID_BYTES} bytes"
    for encode in (CODEC.encode, CODEC.encode_json, CODEC.validate):
        with pytest.raises(SchemaError, match=message):
            encode(record, over)
    foreign = avro_with(SCHEMAS / f"{record}.avsc", dict(CODEC.validate(record, at_limit), id=over["id"]))
    with pytest.raises(SchemaError, match=message):
        CODEC.decode(record, foreign)
    # The batch decoders (the workers' path) give the error in the record's slot, and the good one beside it.
    good = CODEC.encode(record, at_limit)
    out = CODEC.decode_many(record, [foreign, good], topic=TOPIC)
    assert (
        isinstance(out[0], SchemaError)
        and f"{MAX_ID_BYTES + 1} bytes" in str(out[0])
        and out[1]["id"] == at_limit["id"]
    )
    if record == "FeatureEvent":
        out, kept = CODEC.decode_many_keeping(record, [foreign, good], "features")
        assert isinstance(out[0], SchemaError) and kept[0] is None and kept[1] is not None
    if record in ("FeatureEvent", "Label"):  # JSON on the input topics
        text = json.dumps(dict(base, id="x" * 900_000)).encode()
        with pytest.raises(SchemaError, match="id of 900000 bytes is over the limit"):
            CODEC.decode(record, text, allow_json=True)


def test_decode_many_never_raises() -> None:
    good = CODEC.encode("Label", {"id": "a", "ts": 1, "label": 2.5})
    out = CODEC.decode_many(
        "Label", [good, b"\x00", b'{"id": "b", "label": "x"}', good], topic="t", allow_json=True
    )
    assert out[0] == out[3] == {"id": "a", "ts": 1, "label": 2.5}
    assert isinstance(out[1], SchemaError) and "topic t: Label" in str(out[1])
    assert isinstance(out[2], dict) and out[2]["label"] == "x"


def test_unknown_record_name() -> None:
    with pytest.raises(SchemaError, match="unknown record 'Nope'"):
        CODEC.encode("Nope", {})


def test_dead_letter_json_carries_bytes_as_base64() -> None:
    value = {
        "source_topic": "t",
        "partition": 0,
        "offset": 9,
        "key": b"k",
        "value": b"\xff\x00",
        "error": "e",
        "ts": 1,
    }
    text = json.loads(CODEC.encode_json("DeadLetter", value))
    assert text["value"] == "/wA=" and text["key"] == "aw=="
    assert CODEC.to_jsonable("DeadLetter", CODEC.validate("DeadLetter", value))["value"] == "/wA="


def test_numpy_scalars_become_python_values() -> None:
    import numpy as np

    features = {
        "b": np.bool_(True),
        "f": np.float32(0.5),
        "i": np.int32(4),
        "s": np.str_("x"),
        "d": np.float64(2.5),
    }
    value = {"id": "a", "ts": np.int64(3), "features": features}
    decoded = CODEC.decode("FeatureEvent", CODEC.encode("FeatureEvent", value))
    assert decoded["features"] == {"b": True, "f": 0.5, "i": 4, "s": "x", "d": 2.5}
    assert [type(v) for v in decoded["features"].values()] == [bool, float, int, str, float]
    assert CODEC.validate("Label", {"id": "a", "ts": 1, "label": np.bool_(False)})["label"] is False
    with pytest.raises(SchemaError, match=r"features\['n'\]: NaN is not allowed"):
        CODEC.validate("FeatureEvent", {"id": "a", "ts": 1, "features": {"n": np.float32("nan")}})


_scalar = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=5)
)


@settings(max_examples=200, deadline=None)
@given(
    features=st.dictionaries(st.text(max_size=6), _scalar, max_size=6),
    prediction=_scalar,
    proba=st.none() | st.dictionaries(st.text(max_size=3), st.floats(0, 1), max_size=3),
    key=st.none() | st.text(max_size=4),
)
def test_complete_encode_is_byte_identical_to_validated_encode(
    features: dict, prediction: object, proba: dict | None, key: str | None
) -> None:
    codec = default_codec()
    value = {
        "id": "e1",
        "ts": 1_700_000_000_000,
        "model": "m",
        "version": 3,
        "prediction": prediction,
        "proba": proba,
        "features": features,
        "key": key,
        "scored_at": 1_700_000_000_001,
        "explanation": None,
        "explanation_method": None,
    }
    assert codec.encode("Prediction", value, complete=True) == codec.encode("Prediction", value)


@pytest.mark.parametrize(
    "change",
    [
        {"version": 2**64},  # does not fit in a long
        {"version": 1.5},
        {"id": 7},
        {"features": {"x": [1, 2]}},
        {"prediction": object()},
        {"prediction": float("nan")},
        {"features": {"x": float("inf")}},
        {"proba": {"a": float("nan")}},
    ],
)
def test_complete_encode_falls_back_to_the_validating_error(change: dict) -> None:
    codec = default_codec()
    value = {
        "id": "e1",
        "ts": 1,
        "model": "m",
        "version": 3,
        "prediction": None,
        "proba": None,
        "features": {},
    }
    value.update(change)
    with pytest.raises(SchemaError) as expected:
        codec.encode("Prediction", value, topic="predictions")
    with pytest.raises(SchemaError) as got:
        codec.encode("Prediction", value, topic="predictions", complete=True)
    assert str(got.value) == str(expected.value)


@pytest.mark.parametrize(
    ("record", "text"),
    [
        ("FeatureEvent", '{"id": "e\\udc80", "ts": 1, "features": {"x": 1}}'),
        ("FeatureEvent", '{"id": "e1", "ts": 1, "key": "\\uD800", "features": {}}'),
        ("FeatureEvent", '{"id": "e1", "ts": 1, "features": {"\\ud800x": 1}}'),
        ("Label", '{"id": "e1", "label": "\\udfff"}'),
        ("ControlCommand", '{"model": "m", "command": "\\ud800", "args": {}, "ts": 1}'),
    ],
)
def test_json_with_a_lone_surrogate_is_refused_at_decode(record: str, text: str) -> None:
    """``"\\ud800"`` is valid JSON but no Unicode text: it decoded, then failed wherever the string was encoded
    again (the Prediction, the join's Label, the audit entry), each time failing a whole batch, which was then redone
    record by record. Refused where it enters, naming why."""
    with pytest.raises(SchemaError, match="lone surrogate"):
        default_codec().decode(record, text.encode(), allow_json=True)


def test_json_with_a_surrogate_pair_decodes_to_its_character() -> None:
    value = default_codec().decode(
        "FeatureEvent", b'{"id": "\\ud83d\\ude00", "ts": 1, "features": {"caf\\u00e9": 1}}', allow_json=True
    )
    assert value["id"] == "\U0001f600" and value["features"] == {"caf\u00e9": 1}


def test_a_json_record_without_ts_takes_its_message_timestamp() -> None:
    """outside10: a JSON FeatureEvent/Label without ``ts`` was stamped with each reader's clock at decode, so two
    reads of one record (tail twice, the scorer and the joiner) gave it different times. The Kafka timestamp is
    the same for every reader; without one (0 or -1: not available) the time now, as before."""
    codec = default_codec()
    label = b'{"id": "e1", "label": true}'
    assert (
        codec.decode("Label", label, allow_json=True, timestamp=1_700_000_000_123)["ts"] == 1_700_000_000_123
    )
    assert (
        codec.decode("Label", b'{"id": "e1", "ts": 5, "label": true}', allow_json=True, timestamp=9)["ts"]
        == 5
    )
    stamps = [11, 22, -1]
    many = codec.decode_many(
        "FeatureEvent",
        [
            b'{"id": "a", "features": {}}',
            codec.encode("FeatureEvent", {"id": "b", "ts": 7, "features": {}}),
            b'{"id": "c", "features": {}}',
        ],
        allow_json=True,
        timestamps=stamps.__getitem__,
    )
    assert [m["ts"] for m in many[:2]] == [11, 7]  # type: ignore[index]
    assert many[2]["ts"] > 1_700_000_000_000  # type: ignore[index]  # no timestamp: decoded now


_JSON_EVENT = json.dumps({"id": "e1", "ts": 1, "features": {"x": 1.5}})


@pytest.mark.parametrize(
    ("data", "says"),
    [
        (b"\xef\xbb\xbf" + _JSON_EVENT.encode(), "UTF-8 byte-order mark"),
        (_JSON_EVENT.encode("utf-16"), "UTF-16"),
        (_JSON_EVENT.encode("utf-16-le"), "UTF-16"),  # no BOM: '{' then NUL, valid UTF-8 to the decoder
        (_JSON_EVENT.encode("utf-16-be"), "UTF-16"),
    ],
    ids=["utf8_bom", "utf16_bom", "utf16_le", "utf16_be"],
)
def test_json_in_another_encoding_says_to_send_utf8(data: bytes, says: str) -> None:
    # Found from outside (session 37, hostile37): these were refused with Python's words for the reader
    # ("Unexpected UTF-8 BOM (decode using utf-8-sig)", "Expecting property name enclosed in double quotes").
    with pytest.raises(SchemaError) as err:
        CODEC.decode("FeatureEvent", data, topic=TOPIC, allow_json=True)
    text = str(err.value)
    assert says in text and "UTF-8" in text, text
    assert TOPIC in text


def test_binary_junk_starting_with_nul_is_not_called_utf16() -> None:
    with pytest.raises(SchemaError) as err:
        CODEC.decode("FeatureEvent", b"\x00\x00\x00\x00\x01junk", topic=TOPIC, allow_json=True)
    assert "UTF-16" not in str(err.value) and "not Avro single-object encoding" in str(err.value)
