"""``driftline produce features|labels|synthetic``: publish events from a file or a built-in stream.

Labels can follow their events ``--label-delay N`` events later, interleaved with later features, as delayed
labels arrive in production. A file is read whole before anything is sent, so a row that cannot be sent as
written stops the run with its line named and nothing on the topics. Progress goes to stderr (a bar on a
terminal); a summary line always ends the run.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import sys
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

from connectors.kafka_client import check_reachable
from connectors.producer import EventProducer
from connectors.publish import Summary, publish
from connectors.sources import (
    SYNTHETIC_EVENTS,
    SYNTHETIC_NAMES,
    SYNTHETIC_SEED,
    Event,
    open_source,
)
from connectors.topics import ensure_topics
from driftline.errors import ConfigError
from driftline.util import LEADING, MAX_EVENTS, now_ms, sniffed_suffix
from streams.cli import interrupted, positive_rate, settings_from_args


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "produce",
        help="publish features and labels from a file or a synthetic stream",
        description="Publish FeatureEvents and Labels to Kafka (Avro by default).",
    )
    psub = p.add_subparsers(dest="produce_command", metavar="WHAT", required=True)

    feats = psub.add_parser(
        "features", help="publish FeatureEvents from a .csv/.jsonl file (or river:<DataSet>)"
    )
    _file_args(feats)
    feats.add_argument(
        "--with-labels",
        action="store_true",
        help="also publish each row's label (needs --label-col), --label-delay events later",
    )
    feats.add_argument(
        "--label-delay", type=int, default=0, metavar="N", help="events between a feature and its label"
    )
    feats.add_argument(
        "--key-col", metavar="C", help="entity key column (the Kafka key; default: the event id)"
    )
    feats.set_defaults(func=_features)

    labels = psub.add_parser("labels", help="publish Labels from the label column of a .csv/.jsonl file")
    _file_args(labels)
    labels.set_defaults(func=_labels)

    syn = psub.add_parser("synthetic", help="publish a River synthetic stream with (delayed) labels")
    syn.add_argument(
        "--stream", default="sea-drift", choices=SYNTHETIC_NAMES, help="stream (default: sea-drift)"
    )
    syn.add_argument(
        "--events",
        type=int,
        default=SYNTHETIC_EVENTS,
        metavar="N",
        help=f"number of events (default: {SYNTHETIC_EVENTS})",
    )
    syn.add_argument(
        "--label-delay", type=int, default=0, metavar="N", help="events between a feature and its label"
    )
    syn.add_argument("--seed", type=int, default=SYNTHETIC_SEED, help="random seed (same seed, same stream)")
    syn.add_argument(
        "--position", type=int, default=None, help="drift position for *-drift (default: middle)"
    )
    syn.add_argument(
        "--width", type=int, default=1, help="drift width for *-drift (1 = abrupt, larger = gradual)"
    )
    syn.add_argument("--no-labels", action="store_true", help="publish features only")
    _common_args(syn)
    syn.set_defaults(func=_synthetic)


def _file_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--file",
        required=True,
        metavar="F",
        help=".csv or .jsonl file, river:<DataSet>, or - for standard input; - and any other file or pipe "
        "(data, /dev/stdin, a FIFO, <(...)) are JSON lines when they start with '{', else CSV",
    )
    p.add_argument(
        "--id-col",
        metavar="C",
        help="column holding the event id (default: a column or field named id, else the row index)",
    )
    p.add_argument("--label-col", metavar="C", help="label column (excluded from the features)")
    p.add_argument(
        "--ts-col",
        metavar="C",
        help="column holding the event time in ms, not a feature (default: a column named ts unless it is the "
        "label or id column, else the time of sending; as `driftline replay` reads the file)",
    )
    p.add_argument("--limit", type=int, metavar="N", help="publish at most N rows")
    _common_args(p)


def _common_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--rate", type=positive_rate, metavar="N", help="events per second (default: as fast as possible)"
    )
    p.add_argument(
        "--id-prefix",
        default="",
        metavar="P",
        help="prefix for every event id, e.g. a run name: give each run of the same data its own, since a label "
        "for an id already answered is dropped as a duplicate",
    )
    p.add_argument(
        "--encoding", choices=("avro", "json"), default="avro", help="wire encoding (default: avro)"
    )
    p.add_argument("--json", action="store_true", help="print the summary as one JSON object")


class _progress:
    """Context manager yielding ``advance(n)``: a rich bar on a terminal, a no-op otherwise."""

    def __init__(self, enabled: bool, total: int | None) -> None:
        self._enabled = enabled
        self._total = total
        self._bar: Any = None

    def __enter__(self) -> Any:
        if not self._enabled:
            return lambda n: None
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self._bar = Progress(
            TextColumn("producing"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=Console(stderr=True),
            transient=True,
        )
        self._bar.start()
        task = self._bar.add_task("produce", total=self._total)
        return lambda n: self._bar.advance(task, n)

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()


def _run(args: argparse.Namespace, events: Iterable[Event], total: int | None, **options: Any) -> int:
    """Check the broker, create the topics, publish with a progress bar on a terminal, print the summary."""
    settings = settings_from_args(args)
    # The global --model (checked with the settings) names each event's model (FeatureEvent.model).
    if args.model:
        events = (e if e.model is not None else e._replace(model=args.model) for e in events)
    check_reachable(settings)
    ensure_topics(settings)
    show = sys.stderr.isatty() and not args.json
    summary = Summary()
    try:
        with EventProducer(settings, encoding=args.encoding) as producer, _progress(show, total) as advance:
            publish(
                producer,
                events,
                rate=args.rate,
                id_prefix=args.id_prefix,
                advance=advance,
                summary=summary,
                **options,
            )
    except (KeyboardInterrupt, SystemError) as exc:
        if not interrupted(exc):  # a SystemError that is not Ctrl-C inside the client (see streams.cli)
            raise
        # What went out before Ctrl-C (the producer delivers what it queued on the way out), so a rerun can
        # skip it (`--limit`, or a file of the rest).
        print(
            f"produce: interrupted after queueing {summary.features} features and {summary.labels} labels "
            "(delivered unless a delivery warning says otherwise)",
            file=sys.stderr,
        )
        raise
    if args.json:
        print(json.dumps(summary.as_dict()))
    else:
        print(summary.line())
    return 0


def _checked_rows(
    args: argparse.Namespace, key_col: str | None = None, *, features: bool = True, labels: bool = False
) -> int:
    """Read the whole file once before anything is sent: a bad row, a ``--key-col`` an event lacks, a record the
    wire format refuses (e.g. over ``serving.max_record_bytes``), or, when labels are published, an event id that
    repeats, is an error naming it while nothing is on the topic yet, so the fixed file can simply be sent again.
    Returns the number of events (the progress bar's total)."""
    from connectors.producer import CLIENT_MESSAGE_MAX_BYTES
    from driftline.errors import SchemaError
    from schemas.codec import Codec

    limit = settings_from_args(args).serving.max_record_bytes
    codec = Codec(max_record_bytes=limit)
    encode = codec.encode_json if args.encoding == "json" else codec.encode
    rows, now = 0, now_ms()
    # The joiner joins a label to its prediction by the event id and drops a duplicate label: a file that repeats an
    # id would lose all but one of that id's labels without a dead letter (replay, by row, learns them all).
    first_seen: dict[str, int] | None = {} if labels else None
    for event in _file_events(args):
        if first_seen is not None:
            earlier = first_seen.setdefault(event.id, rows + 1)
            if earlier != rows + 1:
                raise ConfigError(
                    f"{args.file}: event id {event.id!r} repeats (events {earlier} and {rows + 1}): a label is "
                    "joined to its prediction by id, so all but one label of a repeated id would be dropped; "
                    "give each row its own id (--id-col names a unique column; a column named 'id' is taken "
                    "for the event id: rename it if its values repeat, and the row number is the id)"
                )
        feats = dict(event.features)
        if key_col and key_col not in feats:
            raise ConfigError(
                f"--key-col: no column {key_col!r} in event {_shown(event.id)} (columns: {', '.join(feats)})"
            )
        key = feats.pop(key_col, None) if key_col else event.key
        ts = now if event.ts is None else event.ts  # sized as sent: the producer stamps the time now
        try:
            sizes = []
            if features:
                value = {
                    "id": event.id,
                    "ts": ts,
                    "key": None if key is None else str(key),
                    "model": event.model,
                }
                data = encode("FeatureEvent", {**value, "features": feats}, topic="features")
                sizes.append(len(data) + len(str(event.id if key is None else key).encode()))
            if labels and event.label is not None:
                data = encode("Label", {"id": event.id, "ts": ts, "label": event.label}, topic="labels")
                sizes.append(len(data) + len(event.id.encode()))
        except SchemaError as exc:
            raise ConfigError(f"{args.file}: event {_shown(event.id)} cannot be sent: {exc}") from None
        # --id-prefix lengthens the id in the value and (without an entity key) the Kafka key.
        if (
            max(sizes, default=0) + 2 * len((getattr(args, "id_prefix", None) or "").encode())
            > CLIENT_MESSAGE_MAX_BYTES
        ):
            raise ConfigError(
                f"{args.file}: event {_shown(event.id)} cannot be sent: a record of {max(sizes):,} bytes with its key "
                f"is over the Kafka client's message.max.bytes ({CLIENT_MESSAGE_MAX_BYTES:,})"
            )
        rows += 1
    if rows == 0:
        # An empty or header-only file (or --limit 0) would print `sent 0 records` and exit 0, as if it had worked.
        why = "--limit 0" if args.limit == 0 else "the file is empty or has only a header row"
        raise ConfigError(f"{args.file}: no events to send ({why})")
    return rows


def _shown(event_id: str, width: int = 60) -> str:
    """An event id as an error names it: a long one (a 900 KB id was printed whole) cut to its start and its size.

    >>> _shown("e-17")
    'e-17'
    >>> _shown("q" * 2000)
    'qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqq... (2,000 characters)'
    """
    return event_id if len(event_id) <= width else f"{event_id[:width]}... ({len(event_id):,} characters)"


def _file_events(args: argparse.Namespace) -> Iterator[Event]:
    if args.file.startswith("river:"):
        # A River data set brings its own target and numbers its rows: a column flag would be silently ignored.
        given = [
            f
            for f, v in (
                ("--label-col", args.label_col),
                ("--id-col", args.id_col),
                ("--ts-col", args.ts_col),
            )
            if v
        ]
        if given:
            raise ConfigError(
                f"{', '.join(given)}: not for {args.file}, whose label is the data set's own target and whose ids "
                "are its row numbers; leave them out"
            )
    return open_source(
        args.file, label_col=args.label_col, id_col=args.id_col, ts_col=args.ts_col, n=args.limit
    )


@contextlib.contextmanager
def _stdin_as_file(args: argparse.Namespace) -> Iterator[None]:
    """``--file -`` (standard input), or a path that is not a regular file (a FIFO, ``/dev/stdin``, a shell's
    ``<(...)``): kept in a temporary file while the command runs
    (the file is read once to check every row before anything is sent, then again to send), JSON lines when its
    first character is ``{``, else CSV. Errors name ``<stdin>`` or the path given. Session 41 (first41): `... |
    driftline produce features --file -` was refused as "not a .csv or .jsonl file", and (misc41) so were
    ``--file /dev/stdin`` and ``--file <(...)``."""
    given = args.file
    if given == "-":
        name, source = "<stdin>", sys.stdin.buffer
    elif _unnamed_kind(given):
        name = given
        try:
            source = Path(given).expanduser().open("rb")
        except OSError as exc:
            raise ConfigError(f"--file {given}: cannot read it ({exc.strerror})") from None
    else:
        yield
        return
    with tempfile.TemporaryDirectory(prefix="driftline-input-") as tmp:
        try:
            path = _spool(source, Path(tmp))
        finally:
            if source is not sys.stdin.buffer:
                source.close()
        args.file = str(path)
        try:
            yield
        except ConfigError as exc:
            raise ConfigError(str(exc).replace(str(path), name)) from None
        finally:
            args.file = given


def _unnamed_kind(spec: str) -> bool:
    """Whether ``spec`` is a path that exists but is not a regular file or a directory (a pipe or a device: it can
    be read once only). The rest (``river:``, a synthetic name, a file, a missing path, a directory) goes to
    :func:`open_source`, which reads a file without a known suffix as what it starts with."""
    if spec.startswith("river:") or spec in SYNTHETIC_NAMES:
        return False
    path = Path(spec).expanduser()
    return path.exists() and not path.is_file() and not path.is_dir()


def _spool(source: BinaryIO, tmp: Path) -> Path:
    """Copy ``source`` into ``tmp``, named ``input.jsonl`` when its first character is ``{``, else
    ``input.csv``; in blocks, so a large input is never held in memory whole."""
    head = b""
    while not head.lstrip(LEADING):
        block = source.read(1 << 16)
        if not block:
            break
        head += block
    path = tmp / f"input{sniffed_suffix(head)}"
    with path.open("wb") as out:
        out.write(head)
        shutil.copyfileobj(source, out)
    return path


def _features(args: argparse.Namespace) -> int:
    with _stdin_as_file(args):
        return _send_features(args)


def _send_features(args: argparse.Namespace) -> int:
    if args.with_labels and not args.label_col and not args.file.startswith("river:"):
        raise ConfigError("--with-labels: needs --label-col")
    total = _checked_rows(args, args.key_col, labels=args.with_labels)
    if not args.label_col and not args.file.startswith("river:"):
        _warn_label_as_feature(args)
    return _run(
        args,
        _file_events(args),
        total,
        labels=args.with_labels,
        label_delay=args.label_delay,
        key_col=args.key_col,
    )


def _warn_label_as_feature(args: argparse.Namespace) -> None:
    """Without ``--label-col`` every column is a feature, the label column too: the model then learns its label from
    its features (a perfect score in the stream, nothing learned for events that come without it). Found from
    outside (session 37): `produce features --file data.csv` sent the file's `label` column as a feature, silently,
    while `driftline replay` on the same file leaves it out (model.label_col)."""
    col = settings_from_args(args).model.label_col
    events = iter(_file_events(args))
    try:
        first = next(events, None)
    finally:
        close = getattr(events, "close", None)
        if close is not None:
            close()  # a generator holding the file open: closed now, not whenever it is collected
    if first is not None and col in first.features:
        print(
            f"driftline produce: warning: column {col!r} (model.label_col, the label column `driftline replay` "
            f"reads) is sent as a feature; if it is the label, pass --label-col {col} to leave it out of the "
            "features (with --with-labels to publish it as labels too)",
            file=sys.stderr,
        )


def _labels(args: argparse.Namespace) -> int:
    with _stdin_as_file(args):
        return _send_labels(args)


def _send_labels(args: argparse.Namespace) -> int:
    if not args.label_col and not args.file.startswith("river:"):
        raise ConfigError("--label-col: required to publish labels from a file")
    total = _checked_rows(args, features=False, labels=True)
    return _run(args, _file_events(args), total, features=False, labels=True)


def _synthetic(args: argparse.Namespace) -> int:
    if not 1 <= args.events <= MAX_EVENTS:
        raise ConfigError(f"--events: must be 1 to {MAX_EVENTS:,}, got {args.events}")
    if not args.stream.endswith("-drift") and (args.position is not None or args.width != 1):
        raise ConfigError(f"--position/--width: only for a *-drift stream ({args.stream!r} has no drift)")
    events = open_source(args.stream, n=args.events, seed=args.seed, position=args.position, width=args.width)
    return _run(args, events, args.events, labels=not args.no_labels, label_delay=args.label_delay)
