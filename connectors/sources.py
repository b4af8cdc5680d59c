"""Event sources: CSV and JSONL files, River's bundled data sets and River's synthetic (drifting) streams.

Every source is an iterator of :class:`Event` ``(id, ts, features, label)``; ``ts`` is ``None`` when the
source has no event time (the producer stamps it). Sources are deterministic: the same arguments give the same
events. Nothing is downloaded: River data sets that need a download are refused unless already cached.

>>> first, again = open_source("sea-drift", n=3, seed=7), open_source("sea-drift", n=3, seed=7)
>>> list(first) == list(again)
True
"""

from __future__ import annotations

import csv
import itertools
import json
import math
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

from driftline.errors import ConfigError
from driftline.util import data_suffix, event_time, parse_cell, ts_column

Scalar = bool | int | float | str | None

# The longest CSV cell read: as large as the largest input record a stage accepts (``serving.max_record_bytes``).
MAX_CELL_CHARS = 1 << 20


class Event(NamedTuple):
    """One event from a source: the FeatureEvent fields plus its label (``None`` when the source has none).

    ``key`` (the entity, the Kafka key) and ``model`` (the model that answers) come from FeatureEvent-shaped
    JSONL lines; ``None`` otherwise (``--key-col`` names a key column of flat rows).
    """

    id: str
    ts: int | None
    features: dict[str, Scalar]
    label: Scalar
    key: str | None = None
    model: str | None = None


def parse_value(text: str) -> Scalar:
    """CSV cell -> value (:func:`driftline.util.parse_cell`, which replay shares): ``""``, ``NA``, ``null``,
    ``NaN`` -> None, ``true``/``false`` -> bool, integers -> int, numbers -> float, else the string.

    >>> [parse_value(s) for s in ["", "3", "-0.5", "nan", "NA", "false", "up"]]
    [None, 3, -0.5, None, None, False, 'up']
    """
    return parse_cell(text)


def _plain(value: Any) -> Scalar:
    """numpy scalars and other number-likes -> plain Python values the codec accepts."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if hasattr(value, "item"):
        return _plain(value.item())
    return str(value)


def _json_value(value: Any, where: str, what: str) -> Scalar:
    """A JSON value of a file -> a value the contract's ``features``/``label`` can carry; objects and arrays
    are refused (they used to be sent as their Python repr, ``"{'a': 1}"``)."""
    if isinstance(value, (dict, list)):
        raise ConfigError(
            f"{where}: {what} is a JSON {'object' if isinstance(value, dict) else 'array'}; "
            "a value must be null, boolean, number or string (flatten it, e.g. 'a.b' keys)"
        )
    return _plain(value)


def _optional_text(value: Any, where: str, field: str) -> str | None:
    """A FeatureEvent's ``key`` or ``model``: a string or null, as the contract has them."""
    if value is None or isinstance(value, str):
        return value
    raise ConfigError(f"{where}: {field} must be a string or null, got {value!r}")


def _event_id(value: Any, where: str, col: str) -> str:
    """The event id from an id column: a non-empty string, or a JSON number as its text."""
    if isinstance(value, str):
        if value.strip():
            return value.strip()
        raise ConfigError(f"{where}: id column {col!r} is empty")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    raise ConfigError(f"{where}: id column {col!r} must hold a non-empty string or a number, got {value!r}")


def _split_row(
    row: dict[str, Scalar],
    index: int,
    label_col: str | None,
    id_col: str | None,
    ts_col: str | None,
    where: str,
    raw_id: Any = None,
) -> Event:
    """One flat row -> Event; ``raw_id`` is the id column's text as written (a CSV cell), when there is one."""
    for col, what in ((label_col, "label"), (id_col, "id"), (ts_col, "ts")):
        if col is not None and col not in row:
            raise ConfigError(f"{where}: no {what} column {col!r} (columns: {', '.join(map(str, row))})")
    time_col = ts_column(row, label_col, id_col, ts_col)  # a column named ts by default, as replay reads it
    ts = event_time(row[time_col], time_col, ts_col is not None, where) if time_col else None
    event_id = (
        _event_id(raw_id if raw_id is not None else row[id_col], where, id_col) if id_col else str(index)
    )
    features = {k: v for k, v in row.items() if k not in (label_col, id_col, time_col)}
    return Event(
        id=event_id,
        ts=ts,
        features=features,
        label=row.get(label_col) if label_col else None,
    )


def csv_source(
    path: str | Path,
    label_col: str | None = None,
    id_col: str | None = None,
    ts_col: str | None = None,
) -> Iterator[Event]:
    """Events from a CSV file with a header row; the id is the ``id_col`` cell's text as written (``007`` stays
    ``007``), by default the ``id`` column's, else the 0-based row index.

    Header names are stripped (a byte order mark too) and must be distinct; a row with fewer cells than the
    header gets ``None`` for the rest, a row with more is refused (an unquoted comma would shift its values). A
    header that is one column holding ``;``, a tab or ``|`` is refused: the file is separated by something else.
    Errors name the file and line (a quoted cell may span lines).
    """
    p = Path(path)
    try:
        # utf-8-sig: spreadsheets write a byte order mark, which would otherwise become part of the first name.
        handle = p.open(newline="", encoding="utf-8-sig")
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read: {exc.strerror}") from exc
    # A cell may be as long as the largest record a stage accepts (csv's default limit is 128 KiB).
    csv.field_size_limit(max(csv.field_size_limit(), MAX_CELL_CHARS))
    with handle:
        reader = csv.reader(handle)
        try:
            header = next(reader, None)
            if header is None:
                return
            names = [name.strip() for name in header]
            other = [d for d in ";\t|" if len(names) == 1 and d in names[0]]
            if other:
                # Read as one column, every row would be published as one text feature, without a word.
                raise ConfigError(
                    f"{p} line 1: the header is one column, {names[0]!r}: the file looks separated by "
                    f"{other[0]!r}, but driftline reads comma-separated values (save it as CSV with commas)"
                )
            duplicates = sorted({name for name in names if names.count(name) > 1})
            if duplicates:
                raise ConfigError(
                    f"{p} line 1: duplicate column name {', '.join(map(repr, duplicates))}: "
                    "each column needs its own name (one would silently replace the other)"
                )
            if id_col is None and "id" in names and "id" not in (label_col, ts_col):
                id_col = (
                    "id"  # a column named id is the event's id, not a feature (as a JSONL line's `id` field)
                )
            id_at = names.index(id_col) if id_col in names else None
            for index, cells in enumerate(reader):
                where = f"{p} line {reader.line_num}"
                if len(cells) > len(names):
                    raise ConfigError(
                        f"{where}: {len(cells)} cells, the header has {len(names)} columns "
                        "(a cell with a comma or a newline must be quoted)"
                    )
                row = {
                    name: parse_value(cells[i]) if i < len(cells) else None for i, name in enumerate(names)
                }
                raw_id = (cells[id_at] if id_at < len(cells) else "") if id_at is not None else None
                yield _split_row(row, index, label_col, id_col, ts_col, where, raw_id)
        except csv.Error as exc:
            raise ConfigError(f"{p} line {reader.line_num}: not valid CSV: {exc}") from exc
        except UnicodeDecodeError:
            raise _not_utf8(p) from None


def _not_utf8(p: Path) -> ConfigError:
    """The error for a file that is not UTF-8 text (binary junk, a Latin-1 export), naming its first bad line.

    The text reader decodes in blocks, so its exception does not say which line; the file is scanned again."""
    with p.open("rb") as raw:
        for lineno, line in enumerate(raw, start=1):
            try:
                line.decode("utf-8")
            except UnicodeDecodeError as exc:
                return ConfigError(
                    f"{p} line {lineno}: not UTF-8 text (byte 0x{line[exc.start]:02x} at column {exc.start + 1}); "
                    "save the file as UTF-8"
                )
    return ConfigError(f"{p}: not UTF-8 text; save the file as UTF-8")


class _DuplicateKey(ValueError):
    pass


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object whose keys are distinct (the input topics refuse the others too, see schemas.codec)."""
    out = dict(pairs)
    if len(out) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _DuplicateKey(key)
            seen.add(key)
    return out


def jsonl_source(
    path: str | Path,
    label_col: str | None = None,
    id_col: str | None = None,
    ts_col: str | None = None,
) -> Iterator[Event]:
    """Events from a JSON-lines file: flat objects (columns), or FeatureEvent-shaped ``{id, ts, features[,
    label]}``.

    Blank lines are skipped. The id is the ``id_col`` field, else the ``id`` field (a non-empty string or a
    number); without one, the 0-based index of the object. Objects and arrays as values are refused (the
    contract's features are null, boolean, number or string), naming the line.
    """
    p = Path(path)
    try:
        handle = p.open(encoding="utf-8-sig")  # a byte order mark, as csv_source skips it
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read: {exc.strerror}") from exc
    with handle:
        try:
            yield from _jsonl_events(p, handle, label_col, id_col, ts_col)
        except UnicodeDecodeError:
            raise _not_utf8(p) from None


def _jsonl_events(
    p: Path, handle: Iterable[str], label_col: str | None, id_col: str | None, ts_col: str | None
) -> Iterator[Event]:
    index = 0
    for lineno, line in enumerate(handle, start=1):
        if not line.strip():
            continue
        where = f"{p} line {lineno}"
        try:
            obj = json.loads(line, object_pairs_hook=_unique_keys)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{where}: not valid JSON: {exc.msg}") from exc
        except _DuplicateKey as exc:
            raise ConfigError(f"{where}: duplicate key {exc.args[0]!r} (which value is meant?)") from None
        if not isinstance(obj, dict):
            raise ConfigError(f"{where}: expected a JSON object, got {type(obj).__name__}")
        label_key = label_col or "label"
        if isinstance(obj.get("features"), dict):
            ts = obj.get(ts_col or "ts")
            id_key = id_col or "id"
            yield Event(
                id=_event_id(obj[id_key], where, id_key) if id_key in obj else str(index),
                ts=int(ts) if isinstance(ts, (int, float)) and not isinstance(ts, bool) else None,
                features={
                    str(k): _json_value(v, where, f"feature {k!r}") for k, v in obj["features"].items()
                },
                label=_json_value(obj.get(label_key), where, f"label column {label_key!r}"),
                key=_optional_text(obj.get("key"), where, "key"),
                model=_optional_text(obj.get("model"), where, "model"),
            )
        else:
            kinds = {label_key: "label column", id_col: "id column", ts_col: "ts column"}
            row = {str(k): _json_value(v, where, f"{kinds.get(k, 'feature')} {k!r}") for k, v in obj.items()}
            # A JSON object names its fields: its `id` is the event id (as in a FeatureEvent or Label).
            own_id = id_col if id_col is not None else ("id" if "id" in row else None)
            yield _split_row(row, index, label_col, own_id, ts_col, where)
        index += 1


# River data sets shipped inside the package (no download). Others work only if already in River's cache.
BUNDLED_DATASETS = (
    "Bananas",
    "ChickWeights",
    "ImageSegments",
    "Phishing",
    "SolarFlare",
    "TrumpApproval",
    "WaterFlow",
    "Yeast",
)


def _river_events(pairs: Iterable[tuple[dict[Any, Any], Any]], n: int | None) -> Iterator[Event]:
    for index, (x, y) in enumerate(itertools.islice(pairs, n)):
        yield Event(str(index), None, {str(k): _plain(v) for k, v in x.items()}, _plain(y))


def river_source(name: str, n: int | None = None, seed: int | None = None) -> Iterator[Event]:
    """Events from a River data set by class name (``Phishing``, ``Bananas``, ``TrumpApproval``, ...).

    ``seed`` is accepted for symmetry with the synthetic streams; file data sets have a fixed order.
    """
    from river import datasets
    from river.datasets import base

    matches = [
        a for a in dir(datasets) if a.lower() == name.lower() and isinstance(getattr(datasets, a), type)
    ]
    cls = getattr(datasets, matches[0]) if matches else None
    if cls is None or not issubclass(cls, base.Dataset):
        raise ConfigError(f"river:{name}: unknown River data set (bundled: {', '.join(BUNDLED_DATASETS)})")
    dataset = cls()
    if isinstance(dataset, base.RemoteDataset) and not dataset.is_downloaded:
        raise ConfigError(
            f"river:{name}: this data set needs a download and driftline never fetches data; "
            f"use a bundled one ({', '.join(BUNDLED_DATASETS)}) or a file"
        )
    return _river_events(dataset, n)


def _synth(kind: str, concept: int, seed: int) -> Any:
    """One concept of a synthetic stream; ``concept`` 0 is the starting concept, 1 the one drifted to."""
    from river.datasets import synth

    if kind == "sea":
        # Thresholds 8 -> 9.5: a large, clearly visible shift of the decision boundary.
        return synth.SEA(variant=(0, 3)[concept], noise=0.0, seed=seed)
    if kind == "agrawal":
        return synth.Agrawal(classification_function=(0, 2)[concept], seed=seed)
    if kind == "hyperplane":
        # A different seed draws a different hyperplane: a new concept on the same features.
        return synth.Hyperplane(seed=seed + 1000 * concept, n_features=10)
    if kind == "sine":
        return synth.Sine(classification_function=(0, 1)[concept], seed=seed)
    if kind == "stagger":
        return synth.STAGGER(classification_function=(0, 1)[concept], seed=seed)
    raise ConfigError(f"unknown synthetic stream {kind!r}")


def _concept_drift_stream() -> Any:
    """River's ConceptDriftStream with an overflow-safe sigmoid.

    River 0.26 computes ``exp(-4 (t - position) / width)`` directly, which overflows for an abrupt drift
    (width 1) more than ~180 events before the drift point. Same sampling otherwise, so the same seed gives
    River's stream.
    """
    import random

    from river.datasets import synth

    class SafeConceptDriftStream(synth.ConceptDriftStream):
        def __iter__(self) -> Iterator[tuple[dict[Any, Any], Any]]:
            rng = random.Random(self.seed)
            first, second = iter(self.stream), iter(self.drift_stream)
            index = 0
            while True:
                index += 1
                v = min(max(-4.0 * (index - self.position) / self.width, -700.0), 700.0)
                p_drift = 1.0 / (1.0 + math.exp(v))
                try:
                    x, y = next(first) if rng.random() > p_drift else next(second)
                except StopIteration:
                    return
                yield x, y

    return SafeConceptDriftStream


SYNTHETIC = ("sea", "agrawal", "hyperplane", "sine", "stagger")
SYNTHETIC_NAMES = SYNTHETIC + tuple(f"{k}-drift" for k in SYNTHETIC)
#: ``driftline produce synthetic``'s defaults, which ``driftline replay --stream`` shares for these names.
SYNTHETIC_EVENTS, SYNTHETIC_SEED = 10_000, 42


def synthetic_source(
    name: str,
    n: int | None = 10_000,
    seed: int = 0,
    position: int | None = None,
    width: int = 1,
) -> Iterator[Event]:
    """A River synthetic stream; ``<kind>-drift`` switches concept around event ``position`` over ``width``
    events.

    ``width=1`` is an abrupt drift, a larger width a gradual one. ``position`` defaults to the middle of ``n``
    (or 5000 for an endless stream).

    >>> next(synthetic_source("sea", n=1, seed=1)).features
    {'0': 1.3436424411240122, '1': 8.474337369372327, '2': 7.6377461897661405}
    """
    kind, drift = (name[: -len("-drift")], True) if name.endswith("-drift") else (name, False)
    if kind not in SYNTHETIC:
        raise ConfigError(f"unknown synthetic stream {name!r} (known: {', '.join(SYNTHETIC_NAMES)})")
    if not drift:
        return _river_events(_synth(kind, 0, seed), n)
    if position is None:
        position = n // 2 if n else 5000
    if position < 0:
        raise ConfigError(f"position: must be at least 0, got {position} (the event the drift is centred on)")
    if width < 1:
        raise ConfigError(f"width: must be at least 1 (1 = abrupt drift), got {width}")
    stream = _concept_drift_stream()(
        stream=_synth(kind, 0, seed),
        drift_stream=_synth(kind, 1, seed + 1),
        position=position,
        width=width,
        seed=seed,
    )
    return _river_events(stream, n)


_READERS: dict[str, Callable[..., Iterator[Event]]] = {
    ".csv": csv_source,
    ".jsonl": jsonl_source,
    ".ndjson": jsonl_source,
    ".json": jsonl_source,
}


def open_source(
    spec: str,
    *,
    label_col: str | None = None,
    id_col: str | None = None,
    ts_col: str | None = None,
    n: int | None = None,
    seed: int = 0,
    position: int | None = None,
    width: int = 1,
) -> Iterator[Event]:
    """Open a source by spec: a ``.csv``/``.jsonl`` path, ``river:<DataSet>``, or a synthetic name
    (``sea-drift``).

    ``n`` limits the number of events (synthetic streams default to 10,000).
    """
    if spec.startswith("river:"):
        return river_source(spec[len("river:") :], n=n, seed=seed)
    if spec in SYNTHETIC_NAMES:
        return synthetic_source(spec, n=10_000 if n is None else n, seed=seed, position=position, width=width)
    path = Path(spec).expanduser()
    suffix = data_suffix(path)
    if suffix is None:
        what = "is a directory" if path.is_dir() else "no such file"
        raise ConfigError(
            f"source {spec!r}: {what}; expected a CSV or JSON-lines file, river:<DataSet>, "
            f"or one of {', '.join(SYNTHETIC_NAMES)}"
        )
    if not path.is_file():
        raise ConfigError(f"source {spec!r}: no such file")
    reader = _READERS[suffix]
    if n is not None and n < 0:
        raise ConfigError(f"--limit: must be at least 0, got {n}")
    if id_col is not None and id_col == label_col:
        raise ConfigError(
            f"--id-col {id_col!r} is the label column; name the event id column, or leave it out"
        )
    events = reader(path, label_col=label_col, id_col=id_col, ts_col=ts_col)
    return itertools.islice(events, n) if n is not None else events
