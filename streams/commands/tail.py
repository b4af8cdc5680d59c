"""``driftline tail TOPIC``: print the last N records of a contract topic, decoded (Avro or JSON).

``--from-beginning`` prints from the start instead: every record, or the first N when ``-n`` is given.

No consumer group is used: each partition is assigned and read from ``high watermark - N``; the records are
merged by timestamp and the last N printed. ``--json`` prints one object per line: ``{topic, partition,
offset, timestamp, key, value}`` with bytes fields (DeadLetter ``key``/``value``) as **base64**; a
ModelRelease's artifact is never printed, only its size (``artifact_size``). A record that cannot be decoded
is printed as an error, not a crash.
"""

from __future__ import annotations

import argparse
import base64
import json
import re
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from connectors.consumer import Received, contract_name, decode_message
from connectors.kafka_client import check_reachable
from connectors.tail import assign_tail, read_first, read_last, read_until_end
from connectors.topics import TOPIC_NAMES
from driftline.errors import ConfigError
from driftline.util import one_line, terminal_safe
from schemas.codec import Codec, default_codec
from streams.cli import settings_from_args, whole_number

PREVIEW_BYTES = 60


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "tail",
        help="print the last records of a topic, decoded",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
        epilog=(
            "--json: one object per line; bytes fields are base64; "
            "a ModelRelease artifact shows only its size."
        ),
    )
    p.add_argument("topic", metavar="TOPIC", help=f"contract topic: {', '.join(TOPIC_NAMES)}")
    p.add_argument(
        "-n",
        type=whole_number,  # -n -3 printed nothing and exited 0
        default=None,
        metavar="N",
        help="how many records: the last N (default: 10), or with --from-beginning the first N",
    )
    p.add_argument(
        "--from-beginning",
        action="store_true",
        help="print the records from the start: every one, or the first N with -n",
    )
    p.add_argument("--follow", "-f", action="store_true", help="keep printing new records until Ctrl-C")
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p.set_defaults(func=_tail)


def _tail(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    name = contract_name(settings, args.topic)
    if args.from_beginning and args.n is not None and args.follow:
        # The first N and then what comes next would skip the records in between without saying so.
        raise ConfigError(
            "-n: with --from-beginning it prints the first N records and stops; drop --follow, "
            "or drop -n to print every record and follow"
        )
    check_reachable(settings)
    render = render_json if args.json else render_text
    codec = default_codec()
    if args.from_beginning:
        # An explicit -n was silently ignored here (contract33): `tail T -n 3 --from-beginning` printed the whole
        # topic. As kcat's `-o beginning -c N` and kafka-console-consumer's `--max-messages`, it is the first N.
        # Only the first N of each partition are read (the whole topic was, to print N).
        if args.n is None:
            consumer, ends = assign_tail(settings, name, None)
            records = read_until_end(consumer, codec, name, ends)
        else:
            consumer, records = read_first(settings, codec, name, args.n)
    else:  # the last N records, not the last N offsets (transaction markers and compaction take offsets)
        consumer, records = read_last(settings, codec, name, 10 if args.n is None else args.n)
    try:
        for item in records:
            print(terminal_safe(render(codec, item)), flush=False)
        sys.stdout.flush()
        if args.follow:
            while True:
                for msg in consumer.consume(500, 0.5):
                    if msg.error() is None:
                        item = decode_message(codec, name, msg, allow_json=True)
                        print(terminal_safe(render(codec, item)), flush=True)
    finally:
        consumer.close()
    return 0


def _key_text(key: bytes | None) -> tuple[str | None, bool]:
    """The key as text when it is UTF-8, else as base64 (second item: whether it is base64)."""
    if key is None:
        return None, False
    try:
        return key.decode("utf-8"), False
    except UnicodeDecodeError:
        return base64.b64encode(key).decode("ascii"), True


def _preview(data: bytes | None) -> str:
    if data is None:
        return "null"
    head = data[:PREVIEW_BYTES]
    more = f"... ({len(data)} bytes)" if len(data) > PREVIEW_BYTES else ""
    return f"{head!r}{more}"


def _shown_value(codec: Codec, item: Received) -> dict[str, Any]:
    """The record as JSON-ready data: artifact bytes replaced by their size, other bytes as base64."""
    value = dict(item.value or {})
    if item.record == "ModelRelease":
        artifact = value.pop("artifact", None)
        value["artifact_size"] = len(artifact) if isinstance(artifact, (bytes, bytearray)) else None
    return codec.to_jsonable(item.record, value)


def render_json(codec: Codec, item: Received) -> str:
    """One JSON line: coordinates plus ``value``, or ``error`` and the raw bytes (base64) when undecodable."""
    key, key_b64 = _key_text(item.key)
    out: dict[str, Any] = {
        "topic": item.message.topic(),
        "partition": item.partition,
        "offset": item.offset,
        "timestamp": item.timestamp_ms,
        "key": key,
    }
    if key_b64:
        out["key_base64"] = True
    if item.ok:
        out["value"] = _shown_value(codec, item)
    else:
        raw = item.message.value()
        out["error"] = str(item.error)
        out["raw_base64"] = base64.b64encode(raw).decode("ascii") if raw else None
    # JSON escapes C0 controls itself, not DEL, C1 (0x9b is CSI) or the bidi overrides: escaped here the JSON way, so
    # the line is still JSON (terminal_safe's \x9b is not a JSON escape: one such id broke `tail --json | jq`).
    return _JSON_UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", json.dumps(out, ensure_ascii=False))


_JSON_UNSAFE = re.compile(r"[\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def _when(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def render_text(codec: Codec, item: Received) -> str:
    """A readable single line: time, partition@offset, key, then the record or the error (one line even when the
    key, an id or a reason holds a newline: :func:`driftline.util.one_line`)."""
    return one_line(_render_text(codec, item))


def _render_text(codec: Codec, item: Received) -> str:
    key, _ = _key_text(item.key)
    head = f"{_when(item.timestamp_ms)} p{item.partition}@{item.offset} key={key}"
    if not item.ok:
        return f"{head} ERROR {item.error} raw={_preview(item.message.value())}"
    value = item.value or {}
    special: dict[str, Callable[[dict[str, Any]], str]] = {
        "ModelRelease": _model_release_text,
        "DeadLetter": _deadletter_text,
    }
    body = special.get(item.record)
    if body is not None:
        return f"{head} {body(value)}"
    return f"{head} {json.dumps(_shown_value(codec, item), ensure_ascii=False, separators=(', ', ': '))}"


def _model_release_text(v: dict[str, Any]) -> str:
    artifact = v.get("artifact")
    size = f"{len(artifact)} bytes inline" if isinstance(artifact, (bytes, bytearray)) else "none inline"
    metrics = ", ".join(f"{k}={val:.4g}" for k, val in sorted((v.get("metrics") or {}).items()))
    return (
        f"{v.get('model')} v{v.get('version')} parent={v.get('parent')} reason={v.get('reason')} "
        f"format={v.get('format')} artifact={size} ref={v.get('artifact_ref')} "
        f"sha256={str(v.get('sha256'))[:12]} metrics[{metrics}]"
    )


def _deadletter_text(v: dict[str, Any]) -> str:
    return (
        f"from {v.get('source_topic')} p{v.get('partition')}@{v.get('offset')} error={v.get('error')!r} "
        f"value={_preview(v.get('value'))}"
    )
