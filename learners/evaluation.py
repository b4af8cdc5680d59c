"""Prequential evaluation: every prediction is scored against its label before the model learns from it.

One :class:`Evaluator` per model version. Cumulative and rolling (last ``window`` examples) metrics from
``river.metrics``, and cumulative accuracy (or MAE) per segment: the values of one configured feature.
Precision, recall and F1 are macro-averaged over the classes seen, so they mean the same for binary and multiclass.

>>> ev = Evaluator("classification", window=2)
>>> for y, p in [(1, 1), (0, 1), (1, 1)]:
...     ev.update(y, p, {1: 0.8, 0: 0.2})
>>> round(ev.snapshot()["accuracy"], 3), ev.snapshot()["rolling_accuracy"]
(0.667, 0.5)
"""

from __future__ import annotations

import collections
import math
from typing import Any

from river import metrics

from learners.fairness import segment_name
from learners.features import finite

# Stable names (they become Prometheus label values and ModelRelease metrics keys).
CLASSIFICATION = ("accuracy", "precision", "recall", "f1", "log_loss")
REGRESSION = ("mae", "rmse")
# Segments tracked at once; when a new one arrives with this many tracked, the one seen least recently is folded
# into "other" (a stream opening with 100 junk values pooled every real segment for ever).
MAX_SEGMENTS = 100
OTHER = "other"
_EPS = (
    1e-15  # probabilities are clamped to [eps, 1 - eps] for the log loss, as river.metrics.CrossEntropy does
)


def segment_of(x: dict[str, Any], feature: str | None) -> str | None:
    """The segment an event belongs to: :func:`segment_name` of ``x[feature]`` (``"missing"`` when absent)."""
    if feature is None:
        return None
    return segment_name(x.get(feature))


def macro_scores(cm: metrics.ConfusionMatrix) -> tuple[float, float, float]:
    """``MacroPrecision(cm=cm).get()``, ``MacroRecall(cm=cm).get()`` and ``MacroF1(cm=cm).get()`` in one pass.

    River's expressions, in the same order per metric, over the same list of classes (``cm.classes`` builds it
    from the matrix's row and column sums; each of River's ``get`` rebuilt it twice, and three metric objects were
    made per read): the same floats, and the same defaultdict reads (each inserts the same zero entries River's
    do). Why: a release reads its evaluator's metrics (~400 LR releases per 20,000 labels; session 23);
    ``tests/test_learners_evaluation_snapshot.py`` checks it against River's metrics."""
    classes = cm.classes
    data, sum_row, sum_col = cm.data, cm.sum_row, cm.sum_col
    precision: float = 0
    recall: float = 0
    f1: float = 0
    b2 = 1.0**2  # MacroF1 is MacroFBeta(beta=1.0)
    for c in classes:
        # (``if d``: a division raises ZeroDivisionError exactly when its divisor is 0.0 or -0.0; River skips.)
        tp = data[c][c]  # MacroPrecision: true_positives, false_positives
        fp = sum_col[c] - data[c][c]
        if d := tp + fp:
            precision += tp / d
        if d := sum_row[c]:  # MacroRecall (River reads data[c][c] first: the same entries end up inserted)
            recall += data[c][c] / d
        p = data[c][c] / d if (d := sum_col[c]) else 0  # MacroFBeta
        r = data[c][c] / d if (d := sum_row[c]) else 0
        if d := b2 * p + r:
            f1 += (1 + b2) * p * r / d
    k = len(classes)
    if not k:
        return 0.0, 0.0, 0.0
    return precision / k, recall / k, f1 / k


class _Totals:
    """Running sums over a set of examples (all of them, or a window): what every metric is computed from.

    Classification keeps a confusion matrix of the examples that had a prediction, plus counts for accuracy
    (a missing prediction counts as wrong) and the summed log loss; regression keeps summed absolute and squared
    errors. Every update is a few additions, and :meth:`remove` undoes one exactly (for the rolling window).
    """

    __slots__ = ("cm", "correct", "loss", "n")

    def __init__(self) -> None:
        self.n = 0
        self.correct = 0.0  # classification: right answers; regression: summed absolute error
        self.loss = 0.0  # classification: summed log loss; regression: summed squared error
        self.cm = metrics.ConfusionMatrix()

    def add(self, y_true: Any, y_pred: Any, score: float, loss: float) -> None:
        self.n += 1
        self.correct += score
        self.loss += loss
        if y_pred is not None:
            self.cm.update(y_true, y_pred)

    def remove(self, y_true: Any, y_pred: Any, score: float, loss: float) -> None:
        self.n -= 1
        self.correct -= score
        self.loss -= loss
        if y_pred is not None:
            self.cm.revert(y_true, y_pred)

    def classification(self) -> dict[str, float]:
        # River's macro averages over the classes seen (true or predicted), read off the shared matrix.
        precision, recall, f1 = macro_scores(self.cm)
        return {
            "accuracy": self.correct / self.n,
            "precision": precision,
            "recall": recall,
            "f1": f1,
            "log_loss": self.loss / self.n,
        }

    def regression(self) -> dict[str, float]:
        return {"mae": self.correct / self.n, "rmse": math.sqrt(max(self.loss, 0.0) / self.n)}


class Evaluator:
    """Prequential metrics of one model version (the same definitions as ``river.metrics``, computed from
    running sums: one update per example instead of one per metric, cumulative and rolling)."""

    def __init__(self, task: str, window: int = 500) -> None:
        self.task = task
        self.window = window
        self._all = _Totals()
        self._recent = _Totals()
        self._window: collections.deque[tuple[Any, Any, float, float]] = collections.deque()
        self._segments: dict[str, list[float]] = {}  # segment -> [n, sum of score]
        self._seen: dict[str, int] = {}  # tracked segment (not "other") -> when it was last seen
        self._clock = 0
        self._n = 0
        # Classification examples passed to ``defer`` and not yet applied: (y_true, y_pred, P(y_true), segment).
        self._pending: list[tuple[Any, Any, float, str | None]] = []

    def __setstate__(self, state: dict[str, Any]) -> None:
        # A checkpoint pickled before ``defer`` existed: ``n`` was a plain attribute and nothing was queued.
        if "n" in state:
            state["_n"] = state.pop("n")
        state.setdefault("_pending", [])
        if "_seen" not in state:  # pickled before segments were evicted: all equally old
            state["_seen"] = {s: 0 for s in state.get("_segments", {}) if s != OTHER}
            state["_clock"] = 0
        self.__dict__.update(state)

    @property
    def n(self) -> int:
        """Examples scored."""
        self.flush()
        return self._n

    def defer(
        self, y_true: Any, y_pred: Any, proba: dict[Any, float] | None = None, segment: str | None = None
    ) -> None:
        """``update``, applied at the next read (``snapshot``, ``segment_scores``, ``n``) or ``flush``.

        Why: the trainer scores two evaluators per label and nothing reads them inside a batch except a release's
        snapshot, so the updates are queued (one append) and applied in one tight loop, with the confusion
        matrices' increments summed per (label, prediction) pair; the metrics read afterwards are the same as
        after ``update`` per example (tests/test_learners_evaluation_defer.py).
        """
        if self.task != "classification":
            self.update(y_true, y_pred, proba, segment)
        elif y_true is not None:
            self._pending.append((y_true, y_pred, proba.get(y_true, 0.0) if proba else 0.0, segment))

    def flush(self) -> None:
        """Apply what ``defer`` queued, in order: the state ``update`` per example would have left."""
        pending = self._pending
        if not pending:
            return
        self._pending = []
        all_, recent, window, cap, log = self._all, self._recent, self._window, self.window, math.log
        low, high = _EPS, 1.0 - _EPS
        added: dict[tuple[Any, Any], int] = {}
        removed: dict[tuple[Any, Any], int] = {}
        a_correct, a_loss, r_correct, r_loss, r_n = (
            all_.correct,
            all_.loss,
            recent.correct,
            recent.loss,
            recent.n,
        )
        for y_true, y_pred, p, segment in pending:
            # update(): the same expressions, the running sums added in the same order
            score = 1.0 if y_pred == y_true else 0.0
            # min(max(p, _EPS), 1.0 - _EPS) without the two calls (the same value, NaN included)
            if low > p:
                p = low
            if high < p:
                p = high
            loss = -log(p)
            a_correct += score
            a_loss += loss
            r_correct += score
            r_loss += loss
            r_n += 1
            if y_pred is not None:
                added[y_true, y_pred] = added.get((y_true, y_pred), 0) + 1
            window.append((y_true, y_pred, score, loss))
            if len(window) > cap:
                old_true, old_pred, old_score, old_loss = window.popleft()
                r_n -= 1
                r_correct -= old_score
                r_loss -= old_loss
                if old_pred is not None:
                    removed[old_true, old_pred] = removed.get((old_true, old_pred), 0) + 1
            if segment is not None:
                self._add_segment(segment, score)
        all_.n += len(pending)
        all_.correct, all_.loss = a_correct, a_loss
        recent.n, recent.correct, recent.loss = r_n, r_correct, r_loss
        self._n += len(pending)
        # Confusion counts are whole numbers in floats: k additions of 1.0 are one addition of k, exactly.
        for (y_true, y_pred), k in added.items():
            for cm in (all_.cm, recent.cm):
                cm.update(y_true, y_pred, float(k))
                cm.n_samples += k - 1
        for (y_true, y_pred), k in removed.items():
            recent.cm.revert(y_true, y_pred, float(k))
            recent.cm.n_samples -= k - 1

    def update(
        self, y_true: Any, y_pred: Any, proba: dict[Any, float] | None = None, segment: str | None = None
    ) -> None:
        """Score one prediction; a missing prediction counts as wrong (classification) or is skipped (regression)."""
        if y_true is None:
            return
        self.flush()  # anything deferred comes first
        if self.task == "regression":
            if not finite(y_true) or not finite(y_pred):
                return
            error = float(y_pred) - float(y_true)
            score, loss, y_pred = abs(error), error * error, None
        else:
            score = 1.0 if y_pred == y_true else 0.0
            # The probability given to the true class; an empty proba means "knew nothing".
            p = min(max(proba.get(y_true, 0.0) if proba else 0.0, _EPS), 1.0 - _EPS)
            loss = -math.log(p)
        item = (y_true, y_pred, score, loss)
        self._all.add(*item)
        self._recent.add(*item)
        self._window.append(item)
        if len(self._window) > self.window:
            self._recent.remove(*self._window.popleft())
        self._n += 1
        if segment is not None:
            self._add_segment(segment, score)

    def _add_segment(self, segment: str, score: float) -> None:
        segments = self._segments
        acc = segments.get(segment)
        if acc is None:
            seen = self._seen
            if segment != OTHER and len(seen) >= MAX_SEGMENTS:
                old = min(seen, key=seen.__getitem__)
                del seen[old]
                n, total = segments.pop(old)
                pool = segments.setdefault(OTHER, [0.0, 0.0])
                pool[0] += n
                pool[1] += total
            acc = segments.setdefault(segment, [0.0, 0.0])
        acc[0] += 1
        acc[1] += score
        if segment != OTHER:
            self._clock += 1
            self._seen[segment] = self._clock

    def segment_scores(self) -> dict[str, tuple[int, float]]:
        """Per segment: (count, accuracy) for classification or (count, MAE) for regression."""
        self.flush()
        return {s: (int(n), total / n) for s, (n, total) in self._segments.items() if n}

    def snapshot(self) -> dict[str, float]:
        """All metrics as finite floats: ``n``, ``accuracy``, ``rolling_accuracy``, ..., ``segment.<v>.accuracy``."""
        self.flush()
        out: dict[str, float] = {"n": float(self._n)}
        if self._n:
            classification = self.task == "classification"
            cumulative = self._all.classification() if classification else self._all.regression()
            if self._n <= self.window:
                # Nothing has left the window yet: the rolling totals are the cumulative ones, the same additions
                # in the same order from the same start (``update`` and ``flush`` add each example to both), so
                # the same metrics. The trainer starts an evaluator per release (~48 LR labels apart) and reads it
                # at the next: half of each snapshot's River metrics (session 23).
                rolling = cumulative
            else:
                rolling = self._recent.classification() if classification else self._recent.regression()
            for name, value in cumulative.items():
                out[name] = float(value)
                out[f"rolling_{name}"] = float(rolling[name])
        key = "accuracy" if self.task == "classification" else "mae"
        for segment, (n, score) in self.segment_scores().items():
            out[f"segment.{segment}.{key}"] = score
            out[f"segment.{segment}.n"] = float(n)
        return {k: v for k, v in out.items() if math.isfinite(v)}
