"""The generated record decoders (schemas/record_decoder.py) and the one-block map shortcut read exactly what the
closures they replace read: the same value and position on valid bytes, the same error (type, message and field
path) on corrupted ones."""

from __future__ import annotations

import random
import struct
from typing import Any

import pytest

from schemas import Codec
from schemas.binary import compile_decoder, compile_field_decoders
from schemas.validation import Invalid

HEADER = 10  # C3 01 + 8-byte fingerprint

EXAMPLES: dict[str, list[dict[str, Any]]] = {
    "TrainingExample": [
        {
            "id": "e1",
            "model": "default",
            "key": None,
            "features": {f"f{i:02d}": i / 7 for i in range(20)},
            "label": False,
            "prediction": True,
            "proba": {"False": 0.25, "True": 0.75},
            "version": 43,
            "event_ts": 1_700_000_000_000,
            "label_ts": 1_700_000_000_500,
        },
        {
            "id": "é" * 70,  # a length past one varint byte
            "model": "m",
            "key": "k",
            "features": {"a": None, "b": True, "c": 3, "d": 1.5, "e": "x"},
            "label": "cat",
            "prediction": None,
            "proba": None,
            "version": -1,
            "event_ts": -(2**40),
            "label_ts": 2**62,
        },
        {
            "id": "",
            "model": "m",
            "key": "",
            "features": {},
            "label": 2.5,
            "prediction": 7,
            "proba": {},
            "version": 0,
            "event_ts": 0,
            "label_ts": 0,
        },
    ],
    "FeatureEvent": [
        {"id": "e", "ts": 1, "key": "k", "features": {"x": 1.0, "y": 2.0}},
        {"id": "e2", "ts": 99, "key": None, "features": {"x": "a", "y": None}},
    ],
    "Label": [{"id": "e", "ts": 1, "label": True}, {"id": "e", "ts": 1, "label": 3}],
}


def outcome(decode: Any, data: bytes) -> tuple[Any, ...]:
    try:
        value, pos = decode(data, HEADER)
    except Invalid as exc:
        return ("Invalid", exc.message, exc.path)
    except Exception as exc:  # the documented ones: IndexError, struct.error, Corrupt, UnicodeDecodeError
        return (type(exc).__name__, str(exc))
    return ("ok", value, [type(v) for v in value.values()], pos)


def encoded(codec: Codec, record: str) -> list[bytes]:
    return [codec.encode(record, value) for value in EXAMPLES[record]]


@pytest.mark.parametrize("record", sorted(EXAMPLES))
def test_same_values_and_positions_as_the_closures(record: str) -> None:
    codec = Codec()
    schema = codec.schema(record)
    generated, closures = compile_decoder(schema), compile_field_decoders(schema)
    assert generated is not closures and hasattr(generated, "source")
    for data in encoded(codec, record) * 2:  # twice: the second time through the maps' learned layouts
        got = outcome(generated, data)
        assert got[0] == "ok"
        assert got == outcome(closures, data)


@pytest.mark.parametrize("record", sorted(EXAMPLES))
def test_same_errors_as_the_closures_on_corrupted_bytes(record: str) -> None:
    codec = Codec()
    schema = codec.schema(record)
    generated, closures = compile_decoder(schema), compile_field_decoders(schema)
    rng = random.Random(16)
    kinds = set()
    for data in encoded(codec, record):
        generated(data, HEADER), closures(data, HEADER)  # layouts learned on both sides
        variants = [data[:cut] for cut in range(HEADER, len(data))]  # every truncation
        for _ in range(300):
            b = bytearray(data)
            for _ in range(rng.randint(1, 3)):
                b[rng.randrange(HEADER, len(b))] = rng.randrange(256)
            variants.append(bytes(b))
        for variant in variants:
            want = outcome(closures, variant)
            kinds.add(want[0])
            assert outcome(generated, variant) == want, variant.hex()
    assert {"IndexError", "ok"} <= kinds and len(kinds) >= 3  # the corruptions reached several paths


def test_a_non_finite_double_is_named_with_its_field() -> None:
    codec = Codec()
    data = bytearray(encoded(codec, "TrainingExample")[0])
    nan = struct.pack("<d", float("nan"))
    # proba's "True" entry: the last double before version, event_ts and label_ts (1 + 6 + 6 bytes) and the end
    at = data.rindex(struct.pack("<d", 0.75))
    data[at : at + 8] = nan
    schema = codec.schema("TrainingExample")
    for decode in (compile_decoder(schema), compile_field_decoders(schema)):
        assert outcome(decode, bytes(data))[:1] + outcome(decode, bytes(data))[2:] == (
            "Invalid",
            ".proba['True']",
        )


def test_the_one_block_map_shortcut_reads_what_the_blocks_read() -> None:
    schema = {"type": "map", "values": ["null", "boolean", "long", "double", "string"]}
    codec = Codec()
    data = encoded(codec, "TrainingExample")[0]
    start = HEADER + 1 + 2 + 1 + 7 + 1  # id "e1", model "default", key null
    dec = compile_decoder(schema)
    dec(data, start)  # learns the layout
    rng = random.Random(3)
    variants = []
    for i in range(20):  # each feature non-finite in turn (the layout's sum check, then the name)
        at = data.index(struct.pack("<d", i / 7), start)
        for bad in (float("nan"), float("inf"), -float("inf")):
            variants.append(data[:at] + struct.pack("<d", bad) + data[at + 8 :])
    for _ in range(2000):
        b = bytearray(data)
        for _ in range(rng.randint(0, 2)):
            b[rng.randrange(start, len(b))] = rng.randrange(256)
        variants += [bytes(b), bytes(b[: rng.randrange(start + 1, len(b))])]
    big = struct.pack("<d", 1e308)  # finite values whose sum overflows: read, not refused
    overflow = data
    for i in (1, 2):
        at = overflow.index(struct.pack("<d", i / 7), start)
        overflow = overflow[:at] + big + overflow[at + 8 :]
    assert outcome_map(dec, overflow, start)[0] == "ok"
    variants.append(overflow)
    tried = set()
    blocks = dec.blocks  # type: ignore[attr-defined]
    for variant in variants:
        fast, slow = outcome_map(dec, variant, start), outcome_map(blocks, variant, start)
        tried.add(slow[0])
        assert fast == slow
    assert {"ok", "Invalid", "IndexError"} <= tried


def outcome_map(decode: Any, data: bytes, start: int) -> tuple[Any, ...]:
    try:
        value, pos = decode(data, start)
    except Invalid as exc:
        return ("Invalid", exc.message, exc.path)
    except Exception as exc:
        return (type(exc).__name__, str(exc))
    return ("ok", list(value.items()), [type(v) for v in value.values()], pos)
