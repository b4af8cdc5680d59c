"""Fairness across segments (the values of ``model.segment_feature``): outcome rates per segment, the gaps
between segments, and the guard check that refuses a candidate widening a gap past a bound. Pure: no Kafka.


Rates per segment, for classification (``positive`` is the class a "positive prediction" means):

- ``positive_rate``: share of predictions equal to ``positive`` (demographic parity compares these);
- ``tpr`` / ``fpr``: share predicted positive among labels that are / are not ``positive`` (equalized odds);
- ``accuracy``. For regression: ``mae``.

Gaps (max minus min over segments with at least ``min_n`` examples):
``demographic_parity`` (positive rate), ``equalized_odds`` (the larger of the TPR gap and the FPR gap),
``accuracy`` for classification; ``mae`` for regression.

The positive class, unless given, is the label whose ``str()`` sorts last among those seen (``True``, ``1``,
``yes``), so it is stable for the usual binary labels; with more than two classes give it explicitly.

>>> m = FairnessMonitor("classification", window=100)
>>> for seg, y, p in [("a", 1, 1), ("a", 0, 1), ("b", 1, 0), ("b", 0, 0)] * 20:
...     m.add(seg, y, p)
>>> m.gaps()["demographic_parity"], m.rates()["a"]["fpr"]
(1.0, 1.0)
"""

from __future__ import annotations

import collections
import hashlib
import math
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = [
    "FairnessEvidence",
    "FairnessMonitor",
    "fairness_check",
    "fairness_evidence",
    "gaps",
    "segment_name",
    "segment_rates",
]

MAX_SEGMENT_CHARS = 64  # a longer segment value is named by its start and a digest (segment_name)
MIN_N = 30  # examples a segment needs before its rates count (as the guard's per-segment check)
# Distinct segments tracked at once (bounded memory and label cardinality). When a new segment arrives with this
# many tracked, the one seen least recently is folded into "_other", so the segments a stream sends now are tracked
# whatever it sent first (a stream opening with 50 junk values kept every real segment in "_other" for ever).
MAX_SEGMENTS = 50
OTHER = "_other"
# The gaps the guard bounds (the accuracy gap is watched but left to the per-segment check, segment_margin).
GUARDED_GAPS = {"classification": ("demographic_parity", "equalized_odds"), "regression": ("mae",)}

Row = tuple[Any, Any]  # (label, prediction)


def positive_of(labels: Iterable[Any], positive: Any = None) -> Any:
    if positive is not None:
        return positive
    seen = [y for y in labels if y is not None]
    return max(seen, key=str) if seen else True


def _same(a: Any, b: Any) -> bool:
    # Labels may arrive as 1 and predictions as True (or "1" from JSON): compare by value, then by text.
    return a == b or str(a) == str(b)


def segment_name(value: Any) -> str:
    """A segment's name: the string form of its value (``"missing"`` for None), at most :data:`MAX_SEGMENT_CHARS`
    characters. A longer value keeps its start and a digest of the whole, so distinct values stay distinct while a
    metric label, a release's ``segment.<name>.*`` metrics and the audit chain stay small whatever the stream sends.

    A whole number is one segment however it was sent, as routing reads it: ``7`` and ``7.0`` (a JSON
    producer's 7 through Avro's double, or a float column) are both ``"7"``; before session 42 they were two
    segments, each with half the examples (docs/experiments/gov42.md, F3).

    >>> segment_name("north"), segment_name(None), len(segment_name("x" * 10_000))
    ('north', 'missing', 64)
    >>> segment_name(7.0), segment_name(7), segment_name(7.5), segment_name(float("nan"))
    ('7', '7', '7.5', 'nan')
    """
    if value is None:
        return "missing"
    if type(value) is float and value.is_integer():
        value = int(value)
    text = str(value)
    if len(text) <= MAX_SEGMENT_CHARS:
        return text
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:16]
    return f"{text[: MAX_SEGMENT_CHARS - 17]}~{digest}"


def segment_rates(rows: Iterable[Row], task: str, positive: Any = None) -> dict[str, float]:
    """The rates of one segment's ``(label, prediction)`` rows."""
    rows = [(y, p) for y, p in rows if y is not None]
    n = len(rows)
    out: dict[str, float] = {"n": float(n)}
    if n == 0:
        return out
    if task == "regression":
        errors = [abs(float(y) - float(p)) for y, p in rows if _finite(y) and _finite(p)]
        out["mae"] = sum(errors) / len(errors) if errors else math.nan
        return out
    pos = positive_of((y for y, _ in rows), positive)
    predicted = [_same(p, pos) for _, p in rows]
    actual = [_same(y, pos) for y, _ in rows]
    n_pos, n_neg = sum(actual), n - sum(actual)
    out["positive_rate"] = sum(predicted) / n
    out["accuracy"] = sum(_same(y, p) for y, p in rows) / n
    out["tpr"] = sum(p and a for p, a in zip(predicted, actual, strict=True)) / n_pos if n_pos else math.nan
    out["fpr"] = (
        sum(p and not a for p, a in zip(predicted, actual, strict=True)) / n_neg if n_neg else math.nan
    )
    return out


def _finite(v: Any) -> bool:
    try:
        return math.isfinite(float(v))
    except (TypeError, ValueError):
        return False


def _spread(values: Iterable[float]) -> float:
    vals = [v for v in values if math.isfinite(v)]
    return max(vals) - min(vals) if len(vals) >= 2 else 0.0


def gaps(rates: Mapping[str, Mapping[str, float]], task: str, min_n: int = MIN_N) -> dict[str, float]:
    """Max-minus-min gaps between the segments that have at least ``min_n`` examples (0.0 with fewer than two)."""
    counted = [r for r in rates.values() if r.get("n", 0) >= min_n]
    if task == "regression":
        return {"mae": _spread(r.get("mae", math.nan) for r in counted)}
    tpr = _spread(r.get("tpr", math.nan) for r in counted)
    fpr = _spread(r.get("fpr", math.nan) for r in counted)
    return {
        "demographic_parity": _spread(r.get("positive_rate", math.nan) for r in counted),
        "equalized_odds": max(tpr, fpr),
        "accuracy": _spread(r.get("accuracy", math.nan) for r in counted),
    }


class FairnessMonitor:
    """Live per-segment rates of the served model: the last ``window`` labelled examples of each segment."""

    def __init__(self, task: str, window: int = 1000, positive: Any = None, min_n: int = MIN_N) -> None:
        self.task = task
        self.window = window
        self.positive = positive
        self.min_n = min_n
        self._rows: dict[str, collections.deque[Row]] = {}
        self._seen: dict[str, int] = {}  # tracked segment -> the example count when it was last seen
        self._clock = 0

    def __setstate__(self, state: dict[str, Any]) -> None:
        # A monitor pickled (in a guard's evidence) before segments were evicted: all equally old.
        if "_seen" not in state:
            state["_seen"] = {key: 0 for key in state.get("_rows", {}) if key != OTHER}
            state["_clock"] = 0
        self.__dict__.update(state)

    def add(self, segment: Any, y: Any, prediction: Any) -> None:
        """One labelled example as the served model answered it (``prediction`` None: it had no answer)."""
        if y is None or prediction is None:
            return
        # As the releases' segment metrics name it (bounded length, None: "missing").
        key = segment_name(segment)
        self._clock += 1
        rows = self._rows.get(key)
        if rows is None:
            seen = self._seen
            if key != OTHER and len(seen) >= MAX_SEGMENTS:
                # Fold the least recently seen segment into _other (its rows stay counted, under the pool).
                old = min(seen, key=seen.__getitem__)
                del seen[old]
                pool = self._rows.get(OTHER)
                if pool is None:
                    pool = self._rows[OTHER] = collections.deque(maxlen=self.window)
                pool.extend(self._rows.pop(old))
            rows = self._rows.setdefault(key, collections.deque(maxlen=self.window))
        if key != OTHER:
            self._seen[key] = self._clock
        rows.append((y, prediction))

    def __len__(self) -> int:
        """The labelled examples in the window, every segment together."""
        return sum(len(rows) for rows in self._rows.values())

    def _positive(self) -> Any:
        return positive_of((y for rows in self._rows.values() for y, _ in rows), self.positive)

    def rates(self) -> dict[str, dict[str, float]]:
        positive = self._positive() if self.task == "classification" else None
        return {seg: segment_rates(rows, self.task, positive) for seg, rows in sorted(self._rows.items())}

    def gaps(self) -> dict[str, float]:
        return gaps(self.rates(), self.task, self.min_n)


class FairnessEvidence:
    """The guard's paired view: per segment, the candidate's and the baseline's answers on the same labels."""

    def __init__(self, task: str) -> None:
        self.task = task
        self.candidate = FairnessMonitor(task, window=100_000)
        self.baseline = FairnessMonitor(task, window=100_000)

    def add(self, segment: Any, y: Any, cand: Any, base: Any) -> None:
        self.candidate.add(segment, y, cand)
        self.baseline.add(segment, y, base)

    def compared(self, min_n: int = MIN_N) -> int:
        """Segments the baseline answered at least ``min_n`` examples of: the check measures gaps from 2."""
        return sum(1 for r in self.baseline.rates().values() if r.get("n", 0) >= min_n)


def fairness_evidence(paired: Any) -> FairnessEvidence:
    """The :class:`FairnessEvidence` riding on a guard ``PairedEvidence`` (created on first use, so evidence
    pickled in a checkpoint before this existed still loads)."""
    found = paired.__dict__.get("fairness")
    if found is None:
        found = paired.__dict__["fairness"] = FairnessEvidence(paired.task)
    return found


def fairness_check(
    evidence: FairnessEvidence | None, max_gap: float | None, min_n: int = MIN_N
) -> tuple[bool | str | None, dict[str, float]]:
    """(check, evidence): ``check`` is None when no bound is set; a string naming the gap when the candidate's
    gap exceeds ``max_gap`` *and* is wider than the baseline's on the same examples; else True.

    Why an absolute bound and not a bound on each step: many small steps, each within a per-step bound, add up
    to any gap (seen in a simulation: 16 releases, each widening by under 0.05). A candidate that narrows a gap
    already over the bound still passes: it is an improvement. It also passes when the baseline answered fewer
    than two segments with ``min_n`` examples (nothing to compare with: an untrained first model).
    """
    if max_gap is None:
        return None, {}
    if evidence is None:  # no example carried a segment: no gap to measure
        return True, {}
    positive = evidence.candidate._positive() if evidence.task == "classification" else None
    for monitor in (evidence.candidate, evidence.baseline):
        monitor.positive, monitor.min_n = positive, min_n
    cand, base = evidence.candidate.gaps(), evidence.baseline.gaps()
    out: dict[str, float] = {}
    compared = evidence.compared(min_n)
    out["fairness.baseline_segments"] = float(compared)
    if compared < 2:
        # The baseline answered too few examples per segment (an untrained first model answers nothing): there
        # is no gap to compare with, and refusing every first model would leave nothing served at all.
        return True, out
    worst = ""
    for name in GUARDED_GAPS[evidence.task]:
        out[f"fairness.{name}.candidate"] = cand[name]
        out[f"fairness.{name}.baseline"] = base[name]
        if cand[name] > max_gap and cand[name] > base[name] and not worst:
            worst = f"{name} gap {base[name]:.3f} -> {cand[name]:.3f} (over the bound {max_gap})"
    return (worst or True), out
