"""Offline replay: the same lifecycle the streaming trainer runs, over a file or a synthetic stream, in-process.

Each event is first scored by the served model; its label is revealed ``delay`` events later and handed to
:meth:`ModelLifecycle.learn_one` together with what was served. Deterministic for a given seed: no clocks, no threads.
"""

from __future__ import annotations

import collections
import csv
import heapq
import itertools
import json
import math
import random
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from driftline.errors import ConfigError
from driftline.util import (
    MAX_REGRESSION_LABEL,
    data_suffix,
    event_time,
    parse_cell,
    quoted_number,
    ts_column,
)
from learners.drift import DriftSignal
from learners.guard import Decision
from learners.lifecycle import ModelLifecycle, Release, Withheld
from learners.specs import MAX_FRACTIONAL_CLASSES, MAX_MODEL_CLASSES, Learner

Row = tuple[str, int | None, dict[str, Any], Any]  # (id, ts, features, label)


def _scalar(text: str) -> Any:
    """CSV cell -> int, float, bool, None or the string itself, as ``driftline produce`` reads it
    (:func:`driftline.util.parse_cell`): the same file gives the pipeline the events replay measured."""
    return parse_cell(text)


class _DuplicateKey(ValueError):
    pass


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) != len(pairs):
        names = [k for k, _ in pairs]
        raise _DuplicateKey(next(k for k in names if names.count(k) > 1))
    return out


def _json_row(path: Path, n: int, line: str, label_col: str) -> dict[str, Any]:
    """One JSON line -> a flat row, as ``driftline produce`` reads it (connectors.sources.jsonl_source): a
    FeatureEvent-shaped line ``{id, ts, features, label}`` is its features with its id, ts and label (a line
    without the label is unlabelled); a repeated key and an object or array as a feature are refused."""
    try:
        record = json.loads(line, object_pairs_hook=_unique_keys)
    except _DuplicateKey as exc:
        raise ConfigError(f"{path}: row {n}: duplicate key {exc.args[0]!r} (which value is meant?)") from None
    except ValueError as exc:
        raise ConfigError(f"{path}: row {n} is not valid JSON: {exc}") from None
    if not isinstance(record, dict):
        raise ConfigError(f"{path}: row {n} is not a JSON object but {type(record).__name__}")
    if isinstance(record.get("features"), dict):
        flat = dict(record["features"])
        flat.update((k, record[k]) for k in ("id", "ts") if k in record)
        flat[label_col] = record.get(label_col)
        record = flat
    for k, v in record.items():
        if k != label_col and isinstance(v, (dict, list)):
            raise ConfigError(
                f"{path}: row {n}: feature {k!r} is a JSON {'object' if isinstance(v, dict) else 'array'}; "
                "a value must be null, boolean, number or string (flatten it, e.g. 'a.b' keys)"
            )
    return record


def _csv_rows(path: Path, reader: csv.DictReader) -> Iterator[dict[str, Any]]:
    """A CSV file's rows, refusing what DictReader would silently mangle: a repeated column name (the last value
    wins) and a row with more cells than the header (they came as a list under the key None)."""
    names = reader.fieldnames or []
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ConfigError(f"{path}: duplicate column name {', '.join(map(repr, duplicates))}")
    for n, row in enumerate(reader, 1):
        if None in row:
            raise ConfigError(
                f"{path}: row {n} has {len(names) + len(row[None])} cells, the header {len(names)} columns "
                "(a cell with a comma must be quoted)"
            )
        yield {k: _scalar(v) for k, v in row.items()}


def _label_kind(label: Any) -> str | None:
    if isinstance(label, str):
        return "text"
    if isinstance(label, bool | int | float):
        return "number"
    return None


def stream_columns(rows: Iterable[Row], id_col: str | None, ts_col: str | None, name: str) -> Iterator[Row]:
    """A stream's rows with the event id and time taken from features ``id_col`` and ``ts_col`` (removed from the
    features, as :func:`read_rows` reads a file's columns); a row without them is refused, naming it."""
    if id_col is not None and id_col == ts_col:
        raise ConfigError(f"--id-col and --ts-col both name {id_col!r}; name two different features")
    for i, (rid, ts, x, y) in enumerate(rows):
        where = f"{name}: event {i}"
        if id_col is not None or ts_col is not None:
            x = dict(x)
        if id_col is not None:
            if id_col not in x:
                raise ConfigError(f"{where} has no feature {id_col!r} for --id-col (has {sorted(x)[:20]})")
            rid = str(x.pop(id_col))
        if ts_col is not None:
            if ts_col not in x:
                raise ConfigError(f"{where} has no feature {ts_col!r} for --ts-col (has {sorted(x)[:20]})")
            ts = event_time(x.pop(ts_col), ts_col, True, where)
        yield rid, ts, x, y


def read_rows(
    path: str | Path,
    label_col: str,
    id_col: str | None = None,
    ts_col: str | None = None,
    regression: bool = False,
) -> Iterator[Row]:
    """Read ``.csv`` or ``.jsonl``/``.json`` rows as ``(id, ts, features, label)``; the id is ``id_col``'s value, by
    default an ``id`` column's, else the row number.

    The event time (ms since epoch) is ``ts_col``'s value, by default a ``ts`` column's when it is not the label
    or id column (:func:`driftline.util.ts_column`, as ``driftline produce`` reads the same file); it is not a
    feature.
    Labels are all numbers or all text (a classifier cannot order the two kinds): a label of the other kind that
    names a class seen before (``"1"`` after ``1``) is that class, as the trainer learns it; any other is refused.
    With ``regression`` (the task is set to it), a text label that spells a finite number is that number, as the
    trainer learns it (``"12.5"`` -> 12.5).
    """
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path}: no such file")
    if id_col is not None and id_col == label_col:
        raise ConfigError(
            f"--id-col {id_col!r} is the label column; name the event id column, or leave it out"
        )
    suffix = data_suffix(path)
    if suffix is None:
        raise ConfigError(f"{path}: not a file; expected a CSV or JSON-lines file")
    # utf-8-sig: a byte order mark (spreadsheets write one) would otherwise start the first column name.
    with path.open(newline="", encoding="utf-8-sig") as fh:
        if suffix == ".csv":
            records: Iterable[dict[str, Any]] = _csv_rows(path, csv.DictReader(fh))
        else:
            records = (
                _json_row(path, n, line, label_col) for n, line in enumerate((t for t in fh if t.strip()), 1)
            )
        # A column named id is the event's id, not a feature (as `driftline produce` reads the same file).
        id_key = id_col or ("id" if label_col != "id" else None)
        i = -1
        kind = (
            None  # of the labels so far: a classifier cannot order text and numbers together (sorted classes)
        )
        classes: dict[str, Any] = {}  # each class's text -> the label as first seen
        for i, record in enumerate(records):
            if label_col not in record:
                raise ConfigError(
                    f"{path}: row {i + 1} has no label column {label_col!r} (has {sorted(record)})"
                )
            if id_col is not None and id_col not in record:  # named, so not silently the row number
                raise ConfigError(f"{path}: row {i + 1} has no id column {id_col!r} (has {sorted(record)})")
            label = record.pop(label_col)
            if type(label) is float and not math.isfinite(label):
                label = None  # NaN/inf (JSON NaN, CSV inf): no label, as a CSV "nan" or an empty cell
            if regression and (number := quoted_number(label)) is not None:
                label = number
            if regression and type(label) in (int, float) and abs(label) > MAX_REGRESSION_LABEL:
                label = None  # not learned, as the trainer dead-letters it (streams.watch): squares overflow
            if label is not None:
                now = _label_kind(label)
                if now is None:
                    raise ConfigError(f"{path}: row {i + 1}: label {label!r:.60} is not a number or text")
                if kind is not None and now != kind and str(label) in classes:
                    # A known class quoted the other way ("1" where 1 came first): the class it names, as the
                    # trainer learns it (streams.watch.FeatureWatch.admit), so the file replays as it trains.
                    label, now = classes[str(label)], kind
                if kind is not None and now != kind:
                    raise ConfigError(
                        f"{path}: row {i + 1}: label {label!r:.60} is {'text' if now == 'text' else 'a number'}, "
                        f"the labels before it are {'text' if kind == 'text' else 'numbers'}"
                    )
                kind = now
                if len(classes) < 1024:  # a classifier's classes; a regression target's values need no memory
                    classes.setdefault(str(label), label)
            where = f"{path}: row {i + 1}"
            if ts_col is not None and ts_col not in record:
                raise ConfigError(f"{where} has no ts column {ts_col!r} (has {sorted(record)})")
            time_col = ts_column(record, label_col, id_key if id_key in record else None, ts_col)
            ts = event_time(record.pop(time_col), time_col, ts_col is not None, where) if time_col else None
            rid = str(record.pop(id_key)) if id_key in record else str(i)
            for k, v in record.items():  # JSON 1e400, NaN, Infinity: produce sends null (sources._plain)
                if type(v) is float and not math.isfinite(v):
                    record[k] = None
            yield rid, ts, record, label
        if i < 0:
            raise ConfigError(f"{path}: no rows to replay (an empty file, or a header alone)")
        if kind is None:
            # Not one label: an accuracy over no labelled event would read as a model that is always wrong.
            raise ConfigError(
                f"{path}: no row has a label in {label_col!r} (every one empty, NA, null or NaN); "
                "name the label column with --label-col"
            )


INFER_ROWS = 5000  # rows read ahead to tell a numeric target from class labels

_GROUPED_NUMBER = re.compile(r"[+-]?\d{1,3}(,\d{3})+(\.\d+)?")


def grouped_numbers(rows: Iterator[Row], n: int = 1000) -> tuple[dict[str, str], Iterator[Row]]:
    """``({feature: an example}, the same rows)`` for the text features whose values among the first ``n`` rows are
    all numbers written with thousands separators (``"106,557.2"``). They are read as text, one category per
    value, as ``driftline produce`` sends them (a comma is also a decimal mark, so no reading is guessed); the
    caller says so, since such a column adds almost nothing to a model."""
    head = list(itertools.islice(rows, n))
    seen: dict[str, str] = {}
    other: set[str] = set()
    for _, _, x, _ in head:
        for k, v in x.items():
            if isinstance(v, str) and k not in other:
                if _GROUPED_NUMBER.fullmatch(v):
                    seen.setdefault(k, v)
                else:
                    other.add(k)
    return {k: v for k, v in seen.items() if k not in other}, itertools.chain(head, rows)


def _fractional_text(y: Any) -> bool:
    """A text label that reads as a non-integer number (``"51.23"``)."""
    if type(y) is not str:
        return False
    try:
        number = float(y)
    except ValueError:
        return False
    return math.isfinite(number) and not number.is_integer()


def infer_task(rows: Iterator[Row], configured: str, label_col: str = "label") -> tuple[str, Iterator[Row]]:
    """``configured``, or ``"regression"`` when a classifier could not learn these labels: more than
    ``MAX_FRACTIONAL_CLASSES`` distinct non-integer numbers among the first ``INFER_ROWS`` (the classifier would
    refuse them at that point). Returns the task and the same rows, none lost. As many non-integer numbers
    written as text (JSON ``"51.23"``) are refused: each would be a class of its own, and no reading is guessed."""
    if configured != "classification":
        return configured, rows
    head = list(itertools.islice(rows, INFER_ROWS))
    fractional = {y for _, _, _, y in head if type(y) is float and math.isfinite(y) and not y.is_integer()}
    task = "regression" if len(fractional) > MAX_FRACTIONAL_CLASSES else configured
    as_text = sorted({y for _, _, _, y in head if _fractional_text(y)}, key=lambda y: float(y))
    if len(as_text) > MAX_FRACTIONAL_CLASSES:
        raise ConfigError(
            f"the labels in {label_col!r} are numbers written as text ({as_text[0]!r}, {as_text[1]!r}, ...: "
            f"{len(as_text)} distinct values in the first {len(head)} rows), so each would be a class of its own; "
            'write them as JSON numbers (51.2, not "51.2") to predict the number'
        )
    return task, itertools.chain(head, rows)


@dataclass
class ReplayResult:
    """What ``driftline replay --json`` prints (``summary()``) plus the timeline the report plots."""

    n: int = 0
    # Events with a label: the denominator of accuracy and MAE (an unlabelled one is neither right nor wrong).
    labelled: int = 0
    correct: int = 0
    abs_error: float = 0.0
    task: str = "classification"
    alarms: list[int] = field(default_factory=list)
    feature_alarms: list[dict[str, Any]] = field(default_factory=list)
    promotions: list[dict[str, Any]] = field(default_factory=list)
    rollbacks: list[dict[str, Any]] = field(default_factory=list)
    decisions: list[dict[str, Any]] = field(default_factory=list)
    outcomes: bytearray = field(default_factory=bytearray)  # per labelled event: 1 = served prediction right
    final_version: int = 0
    n_learned: int = 0
    # Labels of a new class past ``MAX_MODEL_CLASSES``: not learned (nor scored), as the trainer dead-letters them.
    refused_labels: int = 0
    # Releases the lifecycle withheld (learners.lifecycle.Withheld: no scorer would load the artifact), each once.
    withheld: list[dict[str, Any]] = field(default_factory=list)
    # The plain learner run alongside (``replay(..., plain=...)``): same events, every label at the same delay.
    plain_name: str | None = None
    plain_correct: int = 0
    plain_abs_error: float = 0.0
    plain_outcomes: bytearray = field(default_factory=bytearray)
    # Regression: the absolute error per labelled event (None: no numeric answer yet), as the report plots it.
    errors: list[float | None] = field(default_factory=list)
    plain_errors: list[float | None] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {"n": self.n, "task": self.task}
        if self.task == "classification":
            # None when no event was labelled: there is nothing to score (it said 0.0, a perfect failure).
            out["accuracy"] = self.correct / self.labelled if self.labelled else None
        else:
            out["mae"] = self.abs_error / self.labelled if self.labelled else None
        out.update(
            alarms=self.alarms,
            feature_alarms=self.feature_alarms,
            promotions=self.promotions,
            rollbacks=self.rollbacks,
            rejections=sum(1 for d in self.decisions if d["outcome"] == "reject"),
            holds=sum(1 for d in self.decisions if d["outcome"] == "hold"),
            final_version=self.final_version,
            n_learned=self.n_learned,
        )
        if self.refused_labels:
            out["refused_labels"] = self.refused_labels
        if self.withheld:
            out["withheld"] = len(self.withheld)
            out["withheld_first"] = self.withheld[0]
        if self.plain_name is not None and self.labelled:
            # The guard tax: what the guard cost (positive) or gained (negative) against learning every label.
            if self.task == "classification":
                plain = self.plain_correct / self.labelled
                out["plain"] = {"learner": self.plain_name, "accuracy": plain}
                out["plain_accuracy"] = plain
                out["guard_tax"] = plain - out["accuracy"]  # accuracy given up by serving the guarded model
            else:
                plain = self.plain_abs_error / self.labelled
                out["plain"] = {"learner": self.plain_name, "mae": plain}
                out["plain_mae"] = plain
                out["guard_tax"] = out["mae"] / plain - 1 if plain > 0 else 0.0  # relative MAE increase
        return out


def _record(result: ReplayResult, events: list[Any], now: int) -> None:
    for event in events:
        if isinstance(event, Release):
            entry = {"index": now, "version": event.version, "reason": event.reason}
            if event.reason == "rollback":
                result.rollbacks.append(entry)
            elif event.reason != "initial":
                result.promotions.append(entry)
            if event.decision is not None:
                result.decisions.append(
                    {"index": now, "outcome": event.decision.outcome, "text": event.decision.text}
                )
        elif isinstance(event, DriftSignal):
            if event.signal.startswith("feature:"):
                result.feature_alarms.append({"index": event.index, "signal": event.signal})
            elif not result.alarms or result.alarms[-1] != event.index:
                result.alarms.append(event.index)
        elif isinstance(event, Decision):
            result.decisions.append({"index": now, "outcome": event.outcome, "text": event.text})
        elif isinstance(event, Withheld) and event.fresh:
            result.withheld.append(
                {"index": now, "reason": event.reason, "problem": event.problem, "message": event.message}
            )


def _score_plain(result: ReplayResult, plain: Learner, x: dict[str, Any], y: Any) -> None:
    pred = plain.predict_one(x)
    if result.task == "classification":
        ok = pred == y
        result.plain_correct += ok
        result.plain_outcomes.append(1 if ok else 0)
    else:
        err = _abs_error(pred, y)
        result.plain_errors.append(err)
        result.plain_abs_error += err or 0.0


def _abs_error(pred: Any, y: Any) -> float | None:
    try:
        return abs(float(pred) - float(y))
    except (TypeError, ValueError):
        return None  # no answer yet (a cold model answers null): counted as no error, as before


def plain_predictions(rows: Iterable[tuple[dict[str, Any], Any]], learner: Learner, delay: int) -> list[Any]:
    """What ``learner`` predicts for each ``(features, label)`` before learning it, each label learned ``delay``
    rows late: the plain, unguarded baseline the guard tax is measured against."""
    if delay < 0:
        raise ConfigError(f"delay must be >= 0, got {delay}")
    out: list[Any] = []
    pending: collections.deque[tuple[dict[str, Any], Any]] = collections.deque()
    for x, y in rows:
        out.append(learner.predict_one(x))
        pending.append((x, y))
        if len(pending) > delay:
            learner.learn_one(*pending.popleft())
    return out


def replay(
    rows: Iterable[Row],
    lifecycle: ModelLifecycle,
    *,
    delay: int = 0,
    limit: int | None = None,
    on_prediction: Callable[[dict[str, Any]], None] | None = None,
    progress: Callable[[int], None] | None = None,
    plain: Learner | None = None,
    delay_jitter: int = 0,
    seed: int = 0,
) -> ReplayResult:
    """Run ``rows`` through ``lifecycle``: predict with the served model, reveal each label ``delay`` events later.

    ``delay_jitter`` J: each label's delay is drawn uniformly from ``[max(0, delay - J), delay + J]`` events
    (``random.Random(seed)``), so labels arrive out of order, as delayed labels do in a real stream.
    ``plain``: a learner scored on the same events and learning every label at the same delay, with no guard
    (the summary then has ``plain`` and ``guard_tax``; ``plain_outcomes`` is its per-event record).
    """
    if delay < 0:
        raise ConfigError(f"delay must be >= 0, got {delay}")
    if delay_jitter < 0:
        raise ConfigError(f"delay jitter must be >= 0, got {delay_jitter}")
    jitter = random.Random(seed) if delay_jitter else None
    due: list[
        tuple[int, int]
    ] = []  # with jitter: (event index its label is revealed at, event index), a heap
    held: dict[int, tuple[int, int | None, dict[str, Any], Any, Any, dict[str, float] | None, int]] = {}
    result = ReplayResult(task=lifecycle.task)
    if plain is not None:
        result.plain_name = plain.spec.name
    if lifecycle.served_version == 0:
        _record(result, [lifecycle.initial_release()], 0)
    pending: collections.deque[
        tuple[int, int | None, dict[str, Any], Any, Any, dict[str, float] | None, int]
    ] = collections.deque()
    served = lifecycle.served_model
    served_version = lifecycle.served_version
    # A classifier's classes: a label of a new one past MAX_MODEL_CLASSES is not learned, as in the trainer.
    classes: set[str] = set()

    def reveal(now: int) -> None:
        nonlocal served, served_version
        j, ts, x, y, pred, proba, version = held.pop(heapq.heappop(due)[1]) if jitter else pending.popleft()
        if plain is not None:
            plain.learn_one(x, y)
        events = lifecycle.learn_one(
            x, y, served_prediction=pred, served_version=version, served_proba=proba, index=j, ts=ts
        )
        if events:
            _record(result, events, now)
            served, served_version = lifecycle.served_model, lifecycle.served_version

    for i, (rid, ts, x, y) in enumerate(rows):
        if limit is not None and i >= limit:
            break
        if lifecycle.task == "regression" and isinstance(y, str):
            raise ConfigError(
                f"event {i} ({rid}): label {y!r:.60} is not a number, and the task is regression"
            )
        if lifecycle.task == "regression" and y is not None and lifecycle.refuse_label(y) is not None:
            # The trainer dead-letters it (streams.train.Trainer._admit): a Poisson loss and a negative label.
            result.refused_labels += 1
            y = None
        if lifecycle.task == "classification" and y is not None and str(y) not in classes:
            if len(classes) >= MAX_MODEL_CLASSES:
                # The trainer dead-letters it (streams.watch.InputWatch.refuse_label).
                result.refused_labels += 1
                y = None
            else:
                classes.add(str(y))
        pred, probas = served.predict_with_proba(x)
        # As a scorer publishes it (keys on the wire are strings), so the trainer need not predict it again.
        proba = {str(k): v for k, v in probas.items()} or None
        if on_prediction is not None:
            on_prediction(
                {"index": i, "id": rid, "prediction": pred, "proba": proba, "version": served_version}
            )
        result.n += 1
        if y is not None:  # an unlabelled event is scored and served, but neither right nor wrong
            result.labelled += 1
            if lifecycle.task == "classification":
                ok = pred == y
                result.correct += ok
                result.outcomes.append(1 if ok else 0)
            else:
                err = _abs_error(pred, y)
                result.errors.append(err)
                result.abs_error += err or 0.0
            if plain is not None:
                _score_plain(result, plain, x, y)
        if jitter is not None:
            held[i] = (i, ts, x, y, pred, proba, served_version)
            lag = jitter.randint(max(0, delay - delay_jitter), delay + delay_jitter)
            heapq.heappush(due, (i + lag, i))
            while due and due[0][0] <= i:
                reveal(i)
        else:
            pending.append((i, ts, x, y, pred, proba, served_version))
            if len(pending) > delay:
                reveal(i)
        if progress is not None and i % 1000 == 0:
            progress(i)
    while pending or due:  # labels still in flight when the stream ends are learned, as the trainer would
        reveal(result.n)
    result.final_version = lifecycle.served_version
    result.n_learned = lifecycle.n_learned
    return result
