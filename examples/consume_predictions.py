"""Read driftline's predictions with a plain consumer: Avro single-object encoding, decoded with fastavro.

No driftline import: only confluent-kafka, fastavro and the ``.avsc`` files of ``schemas/`` (copy them into your
service). Each record is ``C3 01``, the 8-byte little-endian CRC-64-AVRO fingerprint of the writer's schema,
then the Avro binary body (Avro spec, "Single object encoding"). The fingerprint says which schema wrote the
record, so a record written by an older or newer driftline is still read, with your copy of the schema as the
reader schema. Predictions configured as JSON (``serving.output_encoding: json``) are read too.

    python examples/consume_predictions.py --bootstrap 127.0.0.1:9092 --prefix driftline. --max 10

Prints one JSON object per prediction: id, model, version, prediction, proba.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from fastavro import parse_schema, schemaless_reader
from fastavro.schema import fingerprint, to_parsing_canonical_form

MAGIC = b"\xc3\x01"
HERE = Path(__file__).resolve().parent


def load_schemas(folder: Path) -> tuple[dict[bytes, Any], dict[str, Any]]:
    """Writer schemas by fingerprint (every ``.avsc`` under ``folder``, older versions included) and the
    current reader schema of each record (the ``.avsc`` files directly in ``folder``)."""
    writers: dict[bytes, Any] = {}
    readers: dict[str, Any] = {}
    for path in sorted(folder.rglob("*.avsc")):
        schema = parse_schema(json.loads(path.read_text()))
        # fastavro renders the CRC-64-AVRO fingerprint as hex of the little-endian bytes the wire carries.
        fp = bytes.fromhex(fingerprint(to_parsing_canonical_form(schema), "CRC-64-AVRO"))
        writers.setdefault(fp, schema)
        if path.parent == folder:
            readers[path.stem] = schema
    return writers, readers


def decode(value: bytes, writers: dict[bytes, Any], reader: Any) -> dict[str, Any]:
    """One record's value as a dict (single-object Avro, or a JSON object)."""
    if value[:1] == b"{":
        return dict(json.loads(value))
    if value[:2] != MAGIC:
        raise ValueError(f"not Avro single-object encoding (starts {value[:2].hex()})")
    writer = writers.get(value[2:10])
    if writer is None:
        raise ValueError(f"unknown writer schema fingerprint {value[2:10].hex()}: update your .avsc copies")
    record = schemaless_reader(io.BytesIO(value[10:]), writer, reader)
    if not isinstance(record, dict):
        raise ValueError(f"not a record: {type(record).__name__}")
    return record


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    # The same environment variables driftline reads, so an exported deployment needs no flags.
    parser.add_argument(
        "--bootstrap",
        default=os.environ.get("DRIFTLINE_KAFKA_BOOTSTRAP") or "127.0.0.1:9092",
        help="Kafka bootstrap servers (default %(default)s: $DRIFTLINE_KAFKA_BOOTSTRAP, else 127.0.0.1:9092)",
    )
    parser.add_argument(
        "--prefix",
        default=os.environ.get("DRIFTLINE_TOPIC_PREFIX") or "driftline.",
        help="driftline's topic prefix (default %(default)s: $DRIFTLINE_TOPIC_PREFIX, else driftline.)",
    )
    parser.add_argument("--schemas", type=Path, default=HERE.parent / "schemas", help="folder of .avsc files")
    parser.add_argument("--group", default=f"my-service-{uuid.uuid4().hex[:8]}", help="consumer group id")
    parser.add_argument("--max", type=int, default=0, help="stop after N predictions (default: run forever)")
    parser.add_argument("--timeout", type=float, default=0, help="stop after S seconds without a record")
    args = parser.parse_args()

    from confluent_kafka import Consumer

    writers, readers = load_schemas(args.schemas)
    consumer = Consumer(
        {"bootstrap.servers": args.bootstrap, "group.id": args.group, "auto.offset.reset": "earliest"}
    )
    consumer.subscribe([f"{args.prefix}predictions"])
    seen, last = 0, time.monotonic()
    try:
        while not args.max or seen < args.max:
            msg = consumer.poll(0.5)
            if msg is None:
                if args.timeout and time.monotonic() - last > args.timeout:
                    break
                continue
            if msg.error():
                print(f"consumer error: {msg.error()}", file=sys.stderr)
                continue
            last = time.monotonic()
            try:
                p = decode(msg.value() or b"", writers, readers["Prediction"])
            except ValueError as exc:
                print(f"skipped offset {msg.offset()}: {exc}", file=sys.stderr)
                continue
            out = {k: p.get(k) for k in ("id", "model", "version", "prediction", "proba")}
            print(json.dumps(out), flush=True)
            seen += 1
    finally:
        consumer.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
