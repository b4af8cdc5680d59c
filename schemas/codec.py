"""Bytes <-> records: Avro single-object encoding, JSON on input topics, validation.

Wire format (Avro spec, "Single object encoding"): ``C3 01``, the 8-byte little-endian CRC-64-AVRO
fingerprint of the writer schema's parsing canonical form, then the Avro binary body. A reader looks the
writer schema up by fingerprint among every schema it knows (the current ``*.avsc``, the snapshots in
``history/`` and any registered at run time) and reads with the current schema, so older and newer
writers both work.

>>> codec = default_codec()
>>> data = codec.encode("Label", {"id": "e1", "ts": 1, "label": True})
>>> data[:2].hex(), codec.decode("Label", data)
('c301', {'id': 'e1', 'ts': 1, 'label': True})
"""

from __future__ import annotations

import base64
import functools
import json
import re
import struct
from collections.abc import Callable, Mapping, Sequence
from io import BytesIO
from pathlib import Path
from typing import Any

from fastavro import parse_schema, schemaless_reader
from fastavro.schema import fingerprint as _avro_fingerprint
from fastavro.schema import to_parsing_canonical_form

from driftline.errors import SchemaError
from driftline.util import json_depth, now_ms
from schemas.binary import Corrupt, compile_decoder, compile_encoder, compile_span_decoder
from schemas.validation import Invalid, compile_finite_check, compile_record

__all__ = [
    "DEFAULT_MAX_JSON_DEPTH",
    "DEFAULT_MAX_RECORD_BYTES",
    "INPUT_TOPICS",
    "MAGIC",
    "MAX_ID_BYTES",
    "RECORDS",
    "TOPIC_RECORDS",
    "Codec",
    "default_codec",
    "schema_fingerprint",
]

RECORDS: tuple[str, ...] = (
    "FeatureEvent",
    "Label",
    "Prediction",
    "TrainingExample",
    "ModelRelease",
    "DriftEvent",
    "DeadLetter",
    "ControlCommand",
)
TOPIC_RECORDS: dict[str, str] = {
    "features": "FeatureEvent",
    "labels": "Label",
    "predictions": "Prediction",
    "training": "TrainingExample",
    "models": "ModelRelease",
    "drift": "DriftEvent",
    "control": "ControlCommand",
    "deadletter": "DeadLetter",
}
INPUT_TOPICS: frozenset[str] = frozenset({"features", "labels", "control"})
MAGIC = b"\xc3\x01"
HEADER_LEN = 10
DEFAULT_MAX_RECORD_BYTES = 1 << 20
# Driftline records nest two levels deep (a record holding a map); the JSON parser recurses once per level
# and raises RecursionError near 1000, so anything deeper is refused before it is parsed.
DEFAULT_MAX_JSON_DEPTH = 32
#: The longest event id (UTF-8 bytes) of a FeatureEvent, Label, Prediction or TrainingExample. An id is a Redis key
#: while its label is awaited and is copied into every output; a 900 KB id was refused only by the broker
#: ("message too large" on predictions), and its label could never join. A UUID is 36 bytes.
MAX_ID_BYTES = 1024
NAMESPACE = "driftline"
# Records where a JSON producer may leave ``ts`` out; the codec stamps the message's Kafka timestamp (else now).
_TS_OPTIONAL_IN_JSON = frozenset({"FeatureEvent", "Label", "ControlCommand"})
SCHEMA_DIR = Path(__file__).resolve().parent
Buffer = bytes | bytearray | memoryview


def schema_fingerprint(schema: Mapping[str, Any] | str) -> bytes:
    """The 8 bytes of the CRC-64-AVRO fingerprint, in the little-endian order the wire format uses."""
    parsed = parse_schema(dict(schema) if isinstance(schema, Mapping) else schema)
    # fastavro already renders the Rabin fingerprint as little-endian bytes, as Java's Avro does.
    return bytes.fromhex(_avro_fingerprint(to_parsing_canonical_form(parsed), "CRC-64-AVRO"))


class _Record:
    """Everything the codec caches for one record name (the current reader schema)."""

    __slots__ = (
        "bytes_fields",
        "decode_body",
        "encode_body",
        "finite",
        "fp",
        "has_id",
        "header",
        "name",
        "parsed",
        "raw",
        "span_decoders",
        "validate",
        "validate_json",
    )

    def __init__(self, name: str, raw: dict) -> None:
        self.name = name
        self.raw = raw
        self.parsed = parse_schema(raw)
        self.fp = schema_fingerprint(raw)
        self.header = MAGIC + self.fp
        self.validate = compile_record(raw)
        self.validate_json = compile_record(raw, from_json=True)
        self.finite = compile_finite_check(raw)
        self.encode_body = compile_encoder(raw)
        self.decode_body = compile_decoder(raw)
        self.bytes_fields = tuple(f["name"] for f in raw["fields"] if "bytes" in json.dumps(f["type"]))
        self.has_id = any(f["name"] == "id" and f["type"] == "string" for f in raw["fields"])
        self.span_decoders: dict[str, Any] = {}

    def span_decoder(self, field: str) -> Any:
        """:func:`schemas.binary.compile_span_decoder` for ``field``, compiled once."""
        decoder = self.span_decoders.get(field)
        if decoder is None:
            decoder = self.span_decoders[field] = compile_span_decoder(self.raw, field)
        return decoder


class Codec:
    """Encode, decode and validate the eight driftline records.

    ``schema_dir`` holds ``<Record>.avsc`` files (default: the packaged ones) and optionally a
    ``history/`` folder of older versions, which are known as writer schemas. Records whose encoded
    size exceeds ``max_record_bytes`` are refused both ways (Kafka's default message limit is 1 MiB), and
    JSON nested deeper than ``max_json_depth`` is refused before it is parsed.
    Instances are safe to share between threads: all state is built in ``__init__`` or only grows.

    Decoding never raises anything but :class:`SchemaError` for any input bytes (fuzzed by
    tests/test_schemas_fuzz.py): a record that makes a parser fail in any way (recursion, memory, overflow,
    bad UTF-8) is reported as undecodable, so a caller can dead-letter it and go on.
    """

    def __init__(
        self,
        schema_dir: str | Path | None = None,
        *,
        max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES,
        max_json_depth: int = DEFAULT_MAX_JSON_DEPTH,
    ) -> None:
        self.schema_dir = Path(schema_dir) if schema_dir is not None else SCHEMA_DIR
        self.max_record_bytes = int(max_record_bytes)
        self.max_json_depth = int(max_json_depth)
        self._records: dict[str, _Record] = {}
        # fingerprint -> (record name, writer schema, reader schema or None when writer == reader)
        self._writers: dict[bytes, tuple[str, Any, Any]] = {}
        for name in RECORDS:
            path = self.schema_dir / f"{name}.avsc"
            try:
                raw = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                raise SchemaError(f"cannot load schema {path}: {exc}") from exc
            rec = _Record(name, raw)
            self._records[name] = rec
            self._writers[rec.fp] = (name, rec.parsed, None)
        history = self.schema_dir / "history"
        if history.is_dir():
            for path in sorted(history.glob("*.avsc")):
                self.register_writer_schema(json.loads(path.read_text(encoding="utf-8")))

    # -- schemas ---------------------------------------------------------------------------------------

    def _record(self, record: str) -> _Record:
        try:
            return self._records[record]
        except KeyError:
            raise SchemaError(f"unknown record {record!r}; expected one of {', '.join(RECORDS)}") from None

    def schema(self, record: str) -> dict:
        """The current (reader) schema of ``record`` as loaded from its ``.avsc``."""
        return self._record(record).raw

    def fingerprint(self, record: str) -> bytes:
        """The 8-byte CRC-64-AVRO fingerprint of ``record``'s current schema (wire byte order)."""
        return self._record(record).fp

    def register_writer_schema(self, schema: Mapping[str, Any]) -> None:
        """Know ``schema`` (an older or newer version of a driftline record) as a writer, by fingerprint."""
        try:
            name = str(schema["name"]).rsplit(".", 1)[-1]
            fp = schema_fingerprint(schema)
        except Exception as exc:
            raise SchemaError(f"invalid writer schema: {exc}") from exc
        current = self._records.get(name)
        if current is None or schema.get("namespace", NAMESPACE) != NAMESPACE:
            raise SchemaError(f"writer schema {schema.get('name')!r} is not a driftline record")
        if fp in self._writers:
            return
        self._writers[fp] = (name, parse_schema(dict(schema)), current.parsed)

    # -- validation ------------------------------------------------------------------------------------

    def _invalid(self, rec: _Record, topic: str | None, exc: Invalid) -> SchemaError:
        where = f"topic {topic}: " if topic else ""
        return SchemaError(f"{where}{rec.name}{exc.path}: {exc.message}")

    def _fail(self, rec: _Record, topic: str | None, message: str) -> SchemaError:
        where = f"topic {topic}: " if topic else ""
        return SchemaError(f"{where}{rec.name}: {message}")

    def validate(self, record: str, value: Mapping, *, topic: str | None = None) -> dict:
        """Return a normalized copy of ``value`` (defaults filled) or raise :class:`SchemaError`."""
        rec = self._record(record)
        try:
            clean = rec.validate(value)
        except Invalid as exc:
            raise self._invalid(rec, topic, exc) from None
        if rec.has_id:
            self._check_id(rec, clean, topic)
        return clean

    def _check_id(self, rec: _Record, value: Mapping[str, Any], topic: str | None) -> None:
        """Refuse an id over :data:`MAX_ID_BYTES` (a SchemaError: dead-lettered with this reason)."""
        ident = value.get("id")
        if type(ident) is str and len(ident) > MAX_ID_BYTES // 4:  # 4 UTF-8 bytes a character at most
            size = len(ident.encode("utf-8", "surrogatepass"))
            if size > MAX_ID_BYTES:
                raise self._invalid(
                    rec,
                    topic,
                    Invalid(
                        f"id of {size} bytes is over the limit of {MAX_ID_BYTES} bytes (UTF-8); give each event "
                        "a shorter unique id (a UUID, or a hash of the long one)",
                        ".id",
                    ),
                )

    # -- encoding --------------------------------------------------------------------------------------

    def encode(
        self, record: str, value: Mapping, *, topic: str | None = None, complete: bool = False
    ) -> bytes:
        """Validate ``value`` and return its Avro single-object encoding.

        ``complete=True`` is for hot paths that build a record with every field from already-validated parts (the
        scorer's Prediction from a decoded FeatureEvent): the value is encoded directly and only validated (with
        the usual error) if direct encoding fails, e.g. a missing field or an unexpected type. A value of the right
        Python types is encoded exactly as after validation (checked by tests/test_schemas_codec.py).
        """
        rec = self._record(record)
        if complete:
            buf = bytearray(rec.header)
            try:
                rec.encode_body(value, buf)
            except Exception:  # anything unexpected: take the validating path below for a clear error
                pass
            else:
                if len(buf) <= self.max_record_bytes and (
                    not rec.has_id or len(value["id"]) <= MAX_ID_BYTES // 4
                ):
                    return bytes(buf)
        try:
            clean = rec.validate(value)
        except Invalid as exc:
            raise self._invalid(rec, topic, exc) from None
        if rec.has_id:
            self._check_id(rec, clean, topic)
        buf = bytearray(rec.header)
        try:
            rec.encode_body(clean, buf)
        except UnicodeEncodeError as exc:  # a lone surrogate in some string
            raise self._fail(rec, topic, f"string is not encodable as UTF-8: {exc}") from None
        data = bytes(buf)
        if len(data) > self.max_record_bytes:
            raise self._too_large(rec, topic, len(data))
        return data

    def encode_many(self, record: str, values: Sequence[Mapping], *, topic: str | None = None) -> list[bytes]:
        """Encode a batch; raises on the first invalid record (its message names it)."""
        return [self.encode(record, v, topic=topic) for v in values]

    def encode_batch(
        self,
        record: str,
        values: Sequence[Mapping],
        shared: Mapping[str, Any],
        *,
        topic: str | None = None,
        kept: tuple[str, Sequence[bytes | None]] | None = None,
    ) -> list[bytes | SchemaError]:
        """``encode(record, {**value, **shared}, complete=True)`` for a batch, ``shared`` encoded once; a record
        that cannot be encoded gets its SchemaError in its slot; ``kept``: one field's bytes already encoded (see
        :mod:`schemas.batch_encode`)."""
        from schemas.batch_encode import encode_batch

        return encode_batch(self, record, values, shared, topic=topic, kept=kept)

    def schema_header(self, record: str) -> bytes:
        """The 10 bytes every single-object encoding of ``record`` starts with (magic and fingerprint)."""
        return self._record(record).header

    def encode_json(self, record: str, value: Mapping, *, topic: str | None = None) -> bytes:
        """Validate ``value`` and return compact UTF-8 JSON (bytes fields as base64)."""
        rec = self._record(record)
        try:
            clean = rec.validate(value)
        except Invalid as exc:
            raise self._invalid(rec, topic, exc) from None
        if rec.has_id:
            self._check_id(rec, clean, topic)
        data = json.dumps(_jsonable(rec, clean), separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        if len(data) > self.max_record_bytes:
            raise self._too_large(rec, topic, len(data))
        return data

    def to_jsonable(self, record: str, value: Mapping) -> dict:
        """A decoded record as plain JSON types (bytes fields as base64), e.g. for ``tail --json``."""
        return _jsonable(self._record(record), dict(value))

    def _too_large(self, rec: _Record, topic: str | None, size: int) -> SchemaError:
        limit = self.max_record_bytes
        return self._fail(rec, topic, f"record of {size} bytes exceeds the limit of {limit} bytes")

    # -- decoding --------------------------------------------------------------------------------------

    def decode(
        self,
        record: str,
        data: Buffer,
        *,
        topic: str | None = None,
        allow_json: bool = False,
        timestamp: int | None = None,
    ) -> dict:
        """Decode one record (Avro single-object, or JSON object if ``allow_json``) or raise SchemaError.

        ``timestamp``: the Kafka message's (ms), the ``ts`` of a JSON record that leaves it out (a FeatureEvent,
        Label or ControlCommand: when it was produced, the same for every reader); without one, the time now."""
        rec = self._record(record)
        try:
            return self._decode(rec, data, topic, allow_json, timestamp)
        except SchemaError:
            raise
        except Exception as exc:  # RecursionError, MemoryError, OverflowError...: any parser failure
            raise self._undecodable(rec, topic, exc) from None

    def decode_many(
        self,
        record: str,
        datas: Sequence[Buffer],
        *,
        topic: str | None = None,
        allow_json: bool = False,
        timestamps: Callable[[int], int] | None = None,
    ) -> list[dict | SchemaError]:
        """Decode a batch; each item is the record or the :class:`SchemaError` it raised (never raises).
        ``timestamps(i)``: the i-th record's Kafka timestamp (see :meth:`decode`), asked only of a JSON record."""
        return self._decode_many(self._record(record), datas, topic, allow_json, None, timestamps)

    def decode_many_keeping(
        self,
        record: str,
        datas: Sequence[Buffer],
        field: str,
        *,
        topic: str | None = None,
        allow_json: bool = False,
        timestamps: Callable[[int], int] | None = None,
    ) -> tuple[list[dict | SchemaError], list[bytes | None]]:
        """:meth:`decode_many`, and per record the Avro bytes of its ``field`` as written, when the record was
        written with the current schema (else None: JSON, an older writer schema, an error). Those bytes are a
        valid encoding of the field's value under the current schema's type for it (the scorer copies a
        FeatureEvent's ``features`` into its Prediction, whose field has the same type: see :meth:`field_type`)."""
        rec = self._record(record)
        kept: list[bytes | None] = []
        spans = (rec.span_decoder(field), kept)
        return self._decode_many(rec, datas, topic, allow_json, spans, timestamps), kept

    def field_type(self, record: str, field: str) -> Any:
        """The current schema's type of ``record``'s ``field`` (KeyError if there is none)."""
        for f in self._record(record).raw["fields"]:
            if f["name"] == field:
                return f["type"]
        raise KeyError(f"{record} has no field {field!r}")

    def _decode_many(
        self,
        rec: _Record,
        datas: Sequence[Buffer],
        topic: str | None,
        allow_json: bool,
        keeping: tuple[Any, list[bytes | None]] | None,
        timestamps: Callable[[int], int] | None = None,
    ) -> list[dict | SchemaError]:
        decode = self._decode
        out: list[dict | SchemaError] = []
        append = out.append
        # The batch's usual record: bytes written with the current schema. Its header is compared once and the
        # body goes straight to the compiled decoder (what _decode_current does after the checks _decode and
        # _decode_avro make per record: about a quarter of a FeatureEvent's decode). Anything else, and any
        # record the fast path cannot finish, takes the full path, which gives its own error.
        writer = self._writers.get(rec.fp)
        header = rec.header if writer is not None and writer[0] == rec.name and writer[2] is None else None
        body, limit = rec.decode_body, self.max_record_bytes
        has_id, short_id = rec.has_id, MAX_ID_BYTES // 4  # a longer id may be over MAX_ID_BYTES: checked
        if keeping is not None:
            spanned, keep = keeping[0], keeping[1].append
        for i, data in enumerate(datas):
            if header is not None and type(data) is bytes and data[:HEADER_LEN] == header:
                size = len(data)
                if size <= limit:
                    try:
                        if keeping is None:
                            value, end = body(data, HEADER_LEN)
                        else:
                            value, end, start, stop = spanned(data, HEADER_LEN)
                    except Exception:  # truncated, corrupt, invalid: the full path below names it
                        end = -1
                    if end == size and has_id and len(value["id"]) > short_id:
                        try:
                            self._check_id(rec, value, topic)
                        except SchemaError as exc:
                            value, end = exc, -2
                    if end == -2:
                        append(value)
                        if keeping is not None:
                            keep(None)
                        continue
                    if end == size:
                        append(value)
                        if keeping is not None:
                            keep(data[start:stop])
                        continue
            try:
                append(decode(rec, data, topic, allow_json, timestamps(i) if timestamps else None))
            except SchemaError as exc:
                append(exc)
            except Exception as exc:  # one record's parser failure never fails the batch (see decode)
                append(self._undecodable(rec, topic, exc))
            if keeping is not None:
                keep(None)
        return out

    def _undecodable(self, rec: _Record, topic: str | None, exc: BaseException) -> SchemaError:
        return self._fail(rec, topic, f"undecodable record: {type(exc).__name__}: {str(exc)[:200]}")

    def _decode(
        self, rec: _Record, data: Buffer, topic: str | None, allow_json: bool, timestamp: int | None = None
    ) -> dict:
        value = self._decode_any(rec, data, topic, allow_json, timestamp)
        if rec.has_id:
            self._check_id(rec, value, topic)
        return value

    def _decode_any(
        self, rec: _Record, data: Buffer, topic: str | None, allow_json: bool, timestamp: int | None
    ) -> dict:
        if not isinstance(data, bytes | bytearray | memoryview):
            raise self._fail(rec, topic, f"expected bytes, got {type(data).__name__}")
        size = len(data)
        if size > self.max_record_bytes:
            raise self._too_large(rec, topic, size)
        if data[:2] == MAGIC or (size < 2 and data[:1] == MAGIC[:1]):
            return self._decode_avro(rec, data, size, topic)
        if _looks_like_json(data):
            if allow_json:
                return self._decode_json(rec, data, topic, timestamp)
            raise self._fail(rec, topic, "JSON is not accepted here (only on input topics); expected Avro")
        if size == 0:
            raise self._fail(rec, topic, "empty message")
        head = bytes(data[:4]).hex()
        avro = f"not Avro single-object encoding (starts 0x{head}, expected 0xc301)"
        if not allow_json:
            raise self._fail(rec, topic, avro)
        # On an input topic the sender may have meant JSON: say why it is not JSON either.
        hint = _encoding_hint(data)
        if hint is not None:
            raise self._fail(rec, topic, hint)
        raise self._fail(
            rec, topic, f"neither a JSON object nor Avro single-object encoding: {_json_error(data)}; {avro}"
        )

    def _decode_avro(self, rec: _Record, data: Buffer, size: int, topic: str | None) -> dict:
        fp = bytes(data[2:HEADER_LEN])
        writer = self._writers.get(fp)
        if writer is None:
            if len(fp) < 8:
                raise self._fail(rec, topic, "truncated Avro header")
            # The wire bytes, and the same 8 bytes as the signed long Java's Avro names a fingerprint by
            # (SchemaNormalization.parsingFingerprint64, MissingSchemaException), so either kind of producer finds it.
            java = int.from_bytes(fp, "little", signed=True)
            raise self._fail(
                rec, topic, f"unknown writer schema fingerprint 0x{fp.hex()} (as a Java long: {java})"
            )
        name, writer_schema, reader_schema = writer
        if name != rec.name:
            raise self._fail(rec, topic, f"message holds a {name}, not a {rec.name}")
        if reader_schema is None:
            return self._decode_current(rec, data, size, topic)
        buf = BytesIO(data)
        buf.seek(HEADER_LEN)
        try:
            value = schemaless_reader(buf, writer_schema, reader_schema)
        except EOFError:
            raise self._fail(rec, topic, f"truncated Avro body ({size} bytes)") from None
        except Exception as exc:  # fastavro raises ValueError, UnicodeDecodeError, ... on corrupt bodies
            raise self._fail(rec, topic, f"corrupt Avro body: {type(exc).__name__}: {exc}") from exc
        if buf.tell() != size:
            raise self._fail(rec, topic, f"{size - buf.tell()} trailing bytes after the Avro body")
        if not isinstance(value, dict):
            raise self._fail(rec, topic, "Avro body is not a record")
        if rec.finite is not None:
            try:
                rec.finite(value)
            except Invalid as exc:
                raise self._invalid(rec, topic, exc) from None
        return value

    def _decode_current(self, rec: _Record, data: Buffer, size: int, topic: str | None) -> dict:
        """Written with the current schema: the compiled decoder, no resolution needed."""
        if type(data) is not bytes:
            data = bytes(data)
        try:
            value, end = rec.decode_body(data, HEADER_LEN)
        except Invalid as exc:
            raise self._invalid(rec, topic, exc) from None
        except (IndexError, struct.error):
            raise self._fail(rec, topic, f"truncated Avro body ({size} bytes)") from None
        except (Corrupt, UnicodeDecodeError) as exc:
            raise self._fail(rec, topic, f"corrupt Avro body: {type(exc).__name__}: {exc}") from None
        if end != size:
            raise self._fail(rec, topic, f"{size - end} trailing bytes after the Avro body")
        return value

    def _decode_json(self, rec: _Record, data: Buffer, topic: str | None, timestamp: int | None) -> dict:
        try:
            text = bytes(data).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise self._fail(rec, topic, f"JSON is not valid UTF-8: {exc}") from None
        depth = json_depth(text, self.max_json_depth)
        if depth > self.max_json_depth:
            raise self._fail(
                rec, topic, f"JSON nested deeper than {self.max_json_depth} levels; refused unparsed"
            )
        try:
            # NaN/Infinity literals parse to floats here so the validator can name the field they sit in.
            value = _JSON.decode(text)
        except ValueError as exc:  # DuplicateKey and JSONDecodeError are ValueErrors
            hint = _encoding_hint(data)  # '{' then NUL: UTF-16 without a byte-order mark
            raise self._fail(rec, topic, hint or f"invalid JSON: {exc}") from None
        if not isinstance(value, dict):
            raise self._fail(rec, topic, f"JSON value is not an object but {type(value).__name__}")
        if _SURROGATE_ESCAPE.search(text) is not None and _holds_lone_surrogate(value):
            # "\ud800" alone parses, but is no Unicode text: it failed later, wherever the string was encoded again.
            raise self._fail(
                rec, topic, "JSON string holds a lone surrogate (\\ud800-\\udfff): not Unicode text"
            )
        if rec.name in _TS_OPTIONAL_IN_JSON and "ts" not in value:
            value["ts"] = timestamp if timestamp is not None and timestamp > 0 else now_ms()
        try:
            return rec.validate_json(value)
        except Invalid as exc:
            raise self._invalid(rec, topic, exc) from None


class DuplicateKey(ValueError):
    """A JSON object names the same key twice: refused, since parsers disagree on which value wins."""


def _unique_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) != len(pairs):
        seen: set[str] = set()
        dup = next(k for k, _ in pairs if k in seen or seen.add(k))  # type: ignore[func-returns-value]
        raise DuplicateKey(f"duplicate key {dup[:60]!r} in a JSON object")
    return out


_JSON = json.JSONDecoder(object_pairs_hook=_unique_pairs)
# A \u escape of a UTF-16 surrogate (paired or not): only then is the parsed value checked for a lone one.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def _holds_lone_surrogate(value: Any) -> bool:
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _encoding_hint(data: Buffer) -> str | None:
    """What to do when JSON came in another encoding than UTF-8 (a byte-order mark, UTF-16), else None.

    Python's own error for these ("Unexpected UTF-8 BOM (decode using utf-8-sig)", "Expecting property name")
    speaks to the reader, not to the producer who has to change something."""
    head = bytes(data[:4])
    if head.startswith(b"\xef\xbb\xbf"):
        return (
            "JSON starts with a UTF-8 byte-order mark (EF BB BF): send UTF-8 without a BOM "
            "(Python: encoding='utf-8', not 'utf-8-sig')"
        )
    opening = (b"{", b"[", b'"', b" ")
    if head[:2] in (b"\xff\xfe", b"\xfe\xff") or (
        (head[:1] in opening and head[1:2] == b"\x00") or (head[:1] == b"\x00" and head[1:2] in opening)
    ):
        return "JSON looks UTF-16 encoded (a byte-order mark or NUL bytes): re-encode it as UTF-8"
    return None


def _json_error(data: Buffer) -> str:
    """Why ``data`` is not JSON, for the error on a record that is neither JSON nor Avro. Only reached when the
    first non-blank byte opens no array or object, so the parser cannot recurse."""
    try:
        json.loads(bytes(data).decode("utf-8"))
    except UnicodeDecodeError as exc:
        return f"not JSON (not UTF-8: {exc})"
    except Exception as exc:  # a JSONDecodeError, or anything else the parser met: say what it was
        return f"JSON parse error: {str(exc)[:200]}"
    return "JSON value is not an object"


def _looks_like_json(data: bytes | bytearray | memoryview) -> bool:
    head = bytes(data[:1])
    if head == b"{":
        return True
    if head in (b" ", b"\t", b"\n", b"\r"):
        # Blank-led arrays too: they must meet the depth limit, not the parser in the error path.
        return bytes(data).lstrip()[:1] in (b"{", b"[", b'"')
    # Anything else that a JSON parser would accept but is not an object (e.g. ``[1]`` or ``"x"``) is
    # routed to the JSON path too, so its error says "not an object" rather than "bad magic".
    return head in (b"[", b'"') or bytes(data).strip() in (b"null", b"true", b"false")


def _jsonable(rec: _Record, value: dict) -> dict:
    if not rec.bytes_fields:
        return value
    out = dict(value)
    for name in rec.bytes_fields:
        v = out.get(name)
        if isinstance(v, bytes | bytearray):
            out[name] = base64.b64encode(v).decode("ascii")
    return out


@functools.cache
def default_codec() -> Codec:
    """A shared :class:`Codec` over the packaged schemas (built on first use)."""
    return Codec()
