"""Schema evolution: older and newer writers read with the current schema; every .avsc stays compatible."""

from __future__ import annotations

import copy
import io
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from fastavro import parse_schema, schemaless_reader, schemaless_writer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from driftline.errors import SchemaError
from schemas import MAGIC, RECORDS, Codec, default_codec, schema_fingerprint
from tests.test_schemas_roundtrip import strategy_for

SCHEMA_DIR = Path(default_codec().schema_dir)
REPO = SCHEMA_DIR.parent


def single_object(schema: dict, value: dict) -> bytes:
    buf = io.BytesIO()
    buf.write(MAGIC + schema_fingerprint(schema))
    schemaless_writer(buf, parse_schema(copy.deepcopy(schema)), value)
    return buf.getvalue()


def with_extra_field(schema: dict, field: dict) -> dict:
    newer = copy.deepcopy(schema)
    newer["fields"].append(field)
    return newer


def compatibility_problems(old: dict, new: dict) -> list[str]:
    """What breaks readers or writers of ``old`` when ``new`` replaces it (empty list: compatible)."""
    problems = []
    old_fields = {f["name"]: f for f in old["fields"]}
    new_fields = {f["name"]: f for f in new["fields"]}
    for name, field in new_fields.items():
        if name not in old_fields and "default" not in field:
            problems.append(f"{new['name']}.{name} was added without a default")
    for name, field in old_fields.items():
        if name not in new_fields:
            if "default" not in field:
                problems.append(f"{old['name']}.{name} was removed but had no default")
        elif json.dumps(field["type"], sort_keys=True) != json.dumps(
            new_fields[name]["type"], sort_keys=True
        ):
            problems.append(f"{old['name']}.{name} changed type")
    return problems


def previous_versions(record: str) -> dict[str, dict]:
    """The committed snapshot in history/ and, when git is there, the version at HEAD."""
    versions = {"history": json.loads((SCHEMA_DIR / "history" / f"{record}.avsc").read_text())}
    if shutil.which("git") and (REPO / ".git").exists():
        shown = subprocess.run(
            ["git", "show", f"HEAD:schemas/{record}.avsc"],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=False,
        )
        if shown.returncode == 0:
            versions["HEAD"] = json.loads(shown.stdout)
    return versions


@pytest.mark.parametrize("record", RECORDS)
def test_each_avsc_is_backward_compatible_with_its_previous_versions(record: str) -> None:
    current = json.loads((SCHEMA_DIR / f"{record}.avsc").read_text())
    for source, old in previous_versions(record).items():
        assert compatibility_problems(old, current) == [], f"{record}.avsc vs {source}"


@pytest.mark.parametrize("record", RECORDS)
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_data_written_with_the_history_schema_reads_with_the_current_one(
    record: str, data: st.DataObject
) -> None:
    old = json.loads((SCHEMA_DIR / "history" / f"{record}.avsc").read_text())
    codec = default_codec()
    value = codec.validate(record, data.draw(strategy_for(old)))
    written = single_object(old, value)
    decoded = codec.decode(record, written)
    # fastavro's own schema resolution (old writer, current reader) agrees with the codec.
    reader = parse_schema(codec.schema(record))
    resolved = schemaless_reader(io.BytesIO(written[10:]), parse_schema(old), reader)
    assert resolved == decoded
    old_names = {f["name"] for f in old["fields"]}
    assert {k: v for k, v in decoded.items() if k in old_names} == {k: value[k] for k in old_names}
    assert list(decoded) == [f["name"] for f in codec.schema(record)["fields"]]


def test_compatibility_check_catches_breaking_changes() -> None:
    old = default_codec().schema("Label")
    added = with_extra_field(old, {"name": "weight", "type": "double"})
    assert compatibility_problems(old, added) == ["Label.weight was added without a default"]
    retyped = copy.deepcopy(old)
    retyped["fields"][1]["type"] = "int"
    assert compatibility_problems(old, retyped) == ["Label.ts changed type"]
    removed = copy.deepcopy(old)
    del removed["fields"][0]
    assert compatibility_problems(old, removed) == ["Label.id was removed but had no default"]
    assert (
        compatibility_problems(old, with_extra_field(old, {"name": "w", "type": "double", "default": 1.0}))
        == []
    )


def test_newer_writer_with_an_added_optional_field_is_read_by_the_current_reader() -> None:
    codec = Codec()
    newer = with_extra_field(
        codec.schema("FeatureEvent"), {"name": "source", "type": ["null", "string"], "default": None}
    )
    data = single_object(
        newer, {"id": "e", "ts": 5, "key": "k", "features": {"x": 1.0}, "source": "sensor-1"}
    )
    with pytest.raises(SchemaError, match="unknown writer schema fingerprint"):
        codec.decode("FeatureEvent", data)
    codec.register_writer_schema(newer)
    assert codec.decode("FeatureEvent", data) == {
        "id": "e",
        "ts": 5,
        "key": "k",
        "features": {"x": 1.0},
        "model": None,
    }


def test_older_writer_is_read_by_a_newer_reader_with_defaults(tmp_path: Path) -> None:
    for path in SCHEMA_DIR.glob("*.avsc"):
        shutil.copy(path, tmp_path / path.name)
    current = default_codec().schema("FeatureEvent")
    newer = with_extra_field(current, {"name": "weight", "type": "double", "default": 1.0})
    (tmp_path / "FeatureEvent.avsc").write_text(json.dumps(newer))
    reader = Codec(tmp_path)
    old_data = default_codec().encode("FeatureEvent", {"id": "e", "ts": 5, "features": {"x": 2}})
    with pytest.raises(SchemaError, match="unknown writer schema fingerprint"):
        reader.decode("FeatureEvent", old_data)
    reader.register_writer_schema(current)
    assert reader.decode("FeatureEvent", old_data) == {
        "id": "e",
        "ts": 5,
        "key": None,
        "features": {"x": 2},
        "model": None,
        "weight": 1.0,
    }
    # And the newer reader writes records the current reader can read once it knows the schema.
    new_data = reader.encode("FeatureEvent", {"id": "f", "ts": 6, "features": {}, "weight": 0.5})
    older = Codec()
    older.register_writer_schema(newer)
    assert older.decode("FeatureEvent", new_data) == {
        "id": "f",
        "ts": 6,
        "key": None,
        "features": {},
        "model": None,
    }


def test_history_is_loaded_as_writer_schemas(tmp_path: Path) -> None:
    for path in SCHEMA_DIR.glob("*.avsc"):
        shutil.copy(path, tmp_path / path.name)
    (tmp_path / "history").mkdir()
    older = copy.deepcopy(default_codec().schema("Label"))
    older["fields"].append({"name": "note", "type": "string", "default": ""})
    (tmp_path / "history" / "Label.avsc").write_text(json.dumps(older))
    data = single_object(older, {"id": "a", "ts": 1, "label": False, "note": "n"})
    assert Codec(tmp_path).decode("Label", data) == {"id": "a", "ts": 1, "label": False}


def test_incompatible_writer_is_a_schema_error() -> None:
    codec = Codec()
    writer = copy.deepcopy(codec.schema("Label"))
    writer["fields"][2]["type"] = {"type": "map", "values": "long"}  # matches no branch of the reader's union
    codec.register_writer_schema(writer)
    with pytest.raises(SchemaError, match="topic t: Label: corrupt Avro body"):
        codec.decode("Label", single_object(writer, {"id": "a", "ts": 1, "label": {"x": 1}}), topic="t")


@pytest.mark.parametrize(
    "schema",
    [
        {"type": "record", "name": "Other", "namespace": "driftline", "fields": []},
        {"type": "record", "name": "Label", "namespace": "elsewhere", "fields": []},
        {"type": "record", "name": "Label", "fields": [{"name": "x", "type": "nope"}]},
    ],
)
def test_register_rejects_foreign_schemas(schema: dict[str, Any]) -> None:
    with pytest.raises(SchemaError):
        Codec().register_writer_schema(schema)
