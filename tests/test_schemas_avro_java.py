"""The wire format against a second implementation, Apache Avro for Java 1.12.0, through golden files.

``tests/golden/avro-java/`` holds what Java made (see its README.md for how; the program is
``docs/experiments/avro-java/``): the fingerprints and parsing canonical forms Java computes for every ``.avsc``,
records Java's ``BinaryMessageEncoder`` (and a ``BlockingBinaryEncoder``) wrote from ``cases.jsonl``, and records
driftline wrote in a pipeline run with the values Java's ``BinaryMessageDecoder`` read from them. No Java is needed
here: if driftline's codec drifts from Java's reading of the format, one of these fails.
"""

from __future__ import annotations

import base64
import json
import math
from pathlib import Path
from typing import Any

import pytest
from fastavro import parse_schema
from fastavro.schema import to_parsing_canonical_form

from driftline.errors import SchemaError
from schemas import Codec, default_codec, schema_fingerprint
from schemas.codec import TOPIC_RECORDS

GOLDEN = Path(__file__).resolve().parent / "golden" / "avro-java"
SCHEMA_DIR = Path(default_codec().schema_dir)


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


FINGERPRINTS = _lines(GOLDEN / "fingerprints.jsonl")
CASES = _lines(GOLDEN / "cases.jsonl")
WRITTEN = _lines(GOLDEN / "driftline" / "java-decoded.jsonl")


def differences(a: Any, b: Any, path: str = "") -> list[str]:
    """Where ``a`` and ``b`` differ, types included (1, 1.0 and True differ) and the sign of zero."""
    if type(a) is not type(b):
        return [f"{path}: {a!r} ({type(a).__name__}) != {b!r} ({type(b).__name__})"]
    if isinstance(a, dict):
        if set(a) != set(b):
            return [f"{path}: keys {sorted(a)} != {sorted(b)}"]
        return [d for k in a for d in differences(a[k], b[k], f"{path}[{k!r}]")]
    if isinstance(a, float) and math.copysign(1, a) != math.copysign(1, b):
        return [f"{path}: {a!r} != {b!r}"]
    return [] if a == b else [f"{path}: {a!r} != {b!r}"]


def test_golden_files_cover_every_schema_and_topic() -> None:
    files = {f["file"] for f in FINGERPRINTS}
    on_disk = {
        str(p.relative_to(SCHEMA_DIR))
        for p in [*SCHEMA_DIR.glob("*.avsc"), *SCHEMA_DIR.glob("history/*.avsc")]
    }
    assert files == on_disk
    assert {w["topic"] for w in WRITTEN} == set(TOPIC_RECORDS)
    assert {c["record"] for c in CASES} == {"FeatureEvent", "Label", "ControlCommand"}


@pytest.mark.parametrize("entry", FINGERPRINTS, ids=lambda f: f["file"])
def test_fingerprint_and_canonical_form_match_java(entry: dict[str, Any]) -> None:
    raw = json.loads((SCHEMA_DIR / entry["file"]).read_text(encoding="utf-8"))
    assert to_parsing_canonical_form(parse_schema(raw)) == entry["canonical"]
    assert schema_fingerprint(raw).hex() == entry["fingerprint"]
    # Java's long is the same 8 bytes read little-endian (SchemaNormalization.parsingFingerprint64).
    assert int.from_bytes(schema_fingerprint(raw), "little", signed=True) == entry["long"]


def _expected(record: str, value: dict[str, Any]) -> dict[str, Any]:
    """The case's value as the current schema reads it: fields it does not have dropped, defaults filled."""
    codec = default_codec()
    known = {f["name"] for f in codec.schema(record)["fields"]}
    return codec.validate(record, {k: v for k, v in value.items() if k in known})


@pytest.mark.parametrize("case", CASES, ids=lambda c: c["name"])
def test_driftline_reads_what_java_wrote(case: dict[str, Any]) -> None:
    codec = default_codec()
    data = (GOLDEN / "java" / f"{case['name']}.bin").read_bytes()
    record, expect = case["record"], case["expect"]
    if expect == "unknown":  # a newer writer schema driftline has never seen: refused, naming the fingerprint
        with pytest.raises(
            SchemaError, match=f"unknown writer schema fingerprint 0x{data[2:10].hex()}"
        ) as err:
            codec.decode(record, data)
        # ... also as Java names it (MissingSchemaException, SchemaNormalization.parsingFingerprint64: a long), so a
        # Java producer can find its schema's fingerprint in the dead letter.
        java_long = next(
            f["long"] for f in _lines(GOLDEN / "java-fingerprints.jsonl") if f["case"] == case["name"]
        )
        assert str(java_long) in str(err.value)
        return
    if expect == "invalid":  # Java writes NaN; the contract refuses non-finite doubles
        with pytest.raises(SchemaError, match="must be finite"):
            codec.decode(record, data)
        return
    got = codec.decode(record, data)
    assert differences(got, _expected(record, case["value"])) == []
    assert codec.decode_many(record, [data]) == [got]  # the batch path (its own fast map decoder) agrees


@pytest.mark.parametrize(
    "case",
    [
        c
        for c in CASES
        if c["schema"] == f"{c['record']}.avsc" and not c.get("blocking") and c["expect"] != "invalid"
    ],
    ids=lambda c: c["name"],
)
def test_driftline_writes_the_bytes_java_writes(case: dict[str, Any]) -> None:
    codec = default_codec()
    java = (GOLDEN / "java" / f"{case['name']}.bin").read_bytes()
    assert codec.encode(case["record"], case["value"]).hex() == java.hex()


def test_blocked_maps_are_really_blocked() -> None:
    """The BlockingBinaryEncoder files hold what they are there for: several blocks with negative counts."""
    for case in (c for c in CASES if c.get("blocking")):
        data = (GOLDEN / "java" / f"{case['name']}.bin").read_bytes()
        plain = default_codec().encode(case["record"], _expected(case["record"], case["value"]))
        assert data != plain and len(data) > len(plain)


@pytest.mark.parametrize("entry", WRITTEN, ids=lambda w: w["file"])
def test_java_reads_what_driftline_writes(entry: dict[str, Any]) -> None:
    """Java decoded these driftline-written bytes to ``entry["value"]``; driftline still reads them so and still
    writes exactly these bytes for that value."""
    codec = default_codec()
    record = TOPIC_RECORDS[entry["topic"]]
    data = (GOLDEN / "driftline" / entry["file"]).read_bytes()
    got = codec.decode(record, data)
    assert differences(codec.to_jsonable(record, got), entry["value"]) == []
    assert codec.encode(record, got).hex() == data.hex()
    for name in codec.schema(record)["fields"]:  # bytes fields: Java's base64 is the same bytes
        if isinstance(got[name["name"]], bytes):
            assert base64.b64decode(entry["value"][name["name"]]) == got[name["name"]]


@pytest.mark.parametrize("case", [c for c in CASES if c["expect"] == "unknown"], ids=lambda c: c["name"])
def test_a_newer_java_writer_reads_once_its_schema_is_known(case: dict[str, Any], tmp_path: Path) -> None:
    """The newer writer's schema among ``history/`` (how a deployment learns one): Java's record is read with the
    current schema, the added field skipped."""
    (tmp_path / "history").mkdir()
    for path in SCHEMA_DIR.glob("*.avsc"):
        (tmp_path / path.name).write_bytes(path.read_bytes())
    for path in SCHEMA_DIR.glob("history/*.avsc"):
        (tmp_path / "history" / path.name).write_bytes(path.read_bytes())
    (tmp_path / "history" / f"{case['record']}.newer.avsc").write_text(
        json.dumps(case["schema"]), encoding="utf-8"
    )
    data = (GOLDEN / "java" / f"{case['name']}.bin").read_bytes()
    got = Codec(tmp_path).decode(case["record"], data)
    assert differences(got, _expected(case["record"], case["value"])) == []
