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

Scalar = bool | int | float | str | None


class Event(NamedTuple):
    """One event from a source: the FeatureEvent fields plus its label (``None`` when the source has none)."""

    id: str
    ts: int | None
    features: dict[str, Scalar]
    label: Scalar


def parse_value(text: str) -> Scalar:
    """CSV cell -> value: ``""`` -> None, integers -> int, numbers -> float (NaN/inf -> None), else the
    string.

    >>> [parse_value(s) for s in ["", "3", "-0.5", "nan", "up"]]
    [None, 3, -0.5, None, 'up']
    """
    text = text.strip()
    if text == "":
        return None
    # Digit checks first: most cells are floats, and a failed int() costs an exception per cell.
    if text.isdigit() or (text[0] in "+-" and text[1:].isdigit()):
        return int(text)
    try:
        number = float(text)
    except ValueError:
        return text
    # Missing measurements are often written as NaN; the wire format rejects non-finite numbers.
    return number if math.isfinite(number) else None


def _plain(value: Any) -> Scalar:
    """numpy scalars and other number-likes -> plain Python values the codec accepts."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if hasattr(value, "item"):
        return _plain(value.item())
    return str(value)


def _split_row(
    row: dict[str, Scalar],
    index: int,
    label_col: str | None,
    id_col: str | None,
    ts_col: str | None,
    where: str,
) -> Event:
    for col, what in ((label_col, "label"), (id_col, "id"), (ts_col, "ts")):
        if col is not None and col not in row:
            raise ConfigError(f"{where}: no {what} column {col!r} (columns: {', '.join(map(str, row))})")
    ts_value = row.get(ts_col) if ts_col else None
    if ts_col and not isinstance(ts_value, (int, float)):
        raise ConfigError(f"{where}: ts column {ts_col!r} must hold epoch milliseconds, got {ts_value!r}")
    event_id = row.get(id_col) if id_col else index
    features = {k: v for k, v in row.items() if k not in (label_col, id_col, ts_col)}
    return Event(
        id=str(event_id),
        ts=int(ts_value) if isinstance(ts_value, (int, float)) else None,
        features=features,
        label=row.get(label_col) if label_col else None,
    )


def csv_source(
    path: str | Path,
    label_col: str | None = None,
    id_col: str | None = None,
    ts_col: str | None = None,
) -> Iterator[Event]:
    """Events from a CSV file with a header row; the id is the 0-based row index when there is no
    ``id_col``."""
    p = Path(path)
    try:
        handle = p.open(newline="", encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read: {exc.strerror}") from exc
    with handle:
        reader = csv.DictReader(handle)
        for index, raw in enumerate(reader):
            row = {str(k): parse_value(v or "") for k, v in raw.items() if k is not None}
            yield _split_row(row, index, label_col, id_col, ts_col, f"{p} line {index + 2}")


def jsonl_source(
    path: str | Path,
    label_col: str | None = None,
    id_col: str | None = None,
    ts_col: str | None = None,
) -> Iterator[Event]:
    """Events from a JSON-lines file: flat objects (columns), or FeatureEvent-shaped ``{id, ts, features[,
    label]}``.

    Blank lines are skipped; the id is the 0-based line index when there is no ``id_col`` (or ``id``) field.
    """
    p = Path(path)
    try:
        handle = p.open(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read: {exc.strerror}") from exc
    with handle:
        index = 0
        for lineno, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            where = f"{p} line {lineno}"
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ConfigError(f"{where}: not valid JSON: {exc.msg}") from exc
            if not isinstance(obj, dict):
                raise ConfigError(f"{where}: expected a JSON object, got {type(obj).__name__}")
            if isinstance(obj.get("features"), dict):
                label = obj.get(label_col or "label")
                ts = obj.get(ts_col or "ts")
                yield Event(
                    id=str(obj.get(id_col or "id", index)),
                    ts=int(ts) if isinstance(ts, (int, float)) and not isinstance(ts, bool) else None,
                    features={str(k): _plain(v) for k, v in obj["features"].items()},
                    label=_plain(label),
                )
            else:
                row = {str(k): _plain(v) for k, v in obj.items()}
                yield _split_row(row, index, label_col, id_col, ts_col, where)
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
    readers: dict[str, Callable[..., Iterator[Event]]] = {
        ".csv": csv_source,
        ".jsonl": jsonl_source,
        ".ndjson": jsonl_source,
        ".json": jsonl_source,
    }
    reader = readers.get(path.suffix.lower())
    if reader is None:
        raise ConfigError(
            f"source {spec!r}: expected a .csv or .jsonl file, river:<DataSet>, "
            f"or one of {', '.join(SYNTHETIC_NAMES)}"
        )
    if not path.is_file():
        raise ConfigError(f"source {spec!r}: no such file")
    events = reader(path, label_col=label_col, id_col=id_col, ts_col=ts_col)
    return itertools.islice(events, n) if n is not None else events
