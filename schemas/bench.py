"""Codec micro-benchmark: ``python -m schemas.bench [--json]``.

Times encode and decode of a FeatureEvent with 20 double features through :class:`~schemas.Codec`,
next to plain fastavro on the same record in the same run (so a busy machine shows as a ratio, not a
false regression). Prints microseconds per record.
"""

from __future__ import annotations

import argparse
import io
import json
import timeit
from collections.abc import Callable
from typing import Any

from fastavro import parse_schema, schemaless_reader, schemaless_writer

from schemas.codec import Codec


def _best_us(fn: Callable[[], Any], number: int) -> float:
    return min(timeit.repeat(fn, number=number, repeat=5)) / number * 1e6


def run(number: int = 20000, n_features: int = 20) -> dict[str, float]:
    """Return microseconds per record for each operation."""
    codec = Codec()
    event = {
        "id": "evt-000123",
        "ts": 1_700_000_000_000,
        "key": None,
        "features": {f"x{i}": i * 0.37 + 0.1 for i in range(n_features)},
    }
    data = codec.encode("FeatureEvent", event)
    text = codec.encode_json("FeatureEvent", event)
    batch = [data] * 1000
    parsed = parse_schema(codec.schema("FeatureEvent"))
    clean = codec.validate("FeatureEvent", event)
    body = data[10:]

    def fastavro_write() -> bytes:
        buf = io.BytesIO()
        schemaless_writer(buf, parsed, clean)
        return buf.getvalue()

    return {
        "encode_us": _best_us(lambda: codec.encode("FeatureEvent", event), number),
        "decode_us": _best_us(lambda: codec.decode("FeatureEvent", data), number),
        "decode_many_us": _best_us(lambda: codec.decode_many("FeatureEvent", batch), max(1, number // 1000))
        / len(batch),
        "validate_us": _best_us(lambda: codec.validate("FeatureEvent", event), number),
        "encode_json_us": _best_us(lambda: codec.encode_json("FeatureEvent", event), number),
        "decode_json_us": _best_us(lambda: codec.decode("FeatureEvent", text, allow_json=True), number),
        "fastavro_write_us": _best_us(fastavro_write, number),
        "fastavro_read_us": _best_us(lambda: schemaless_reader(io.BytesIO(body), parsed, None), number),
        "avro_bytes": float(len(data)),
        "json_bytes": float(len(text)),
    }


def main(argv: list[str] | None = None) -> int:
    """Entry point for ``python -m schemas.bench``."""
    parser = argparse.ArgumentParser(prog="python -m schemas.bench", description=__doc__)
    parser.add_argument("--number", type=int, default=20000, help="calls per timing round")
    parser.add_argument("--features", type=int, default=20, help="double features per event")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    result = run(args.number, args.features)
    if args.json:
        print(json.dumps({k: round(v, 3) for k, v in result.items()}))
    else:
        for key, value in result.items():
            print(f"{key:20s} {value:10.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
