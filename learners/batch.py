"""Batched prediction for a served (frozen) learner: one matrix product per batch instead of a River call per event.

Why: a scorer receives events 500 at a time, and ``Learner.predict_with_proba`` spends ~25 us per event walking River
dicts (clean the features, scale them, dot them with the weights). For a binary logistic regression behind River's
``StandardScaler`` (the ``logistic_regression`` learner, and the ``auto`` pool when its LR member answers) the same
numbers come out of a few numpy operations over the whole batch.

The mirror is a snapshot: scorers never learn, they swap whole models, so :func:`batch_predictor` is called once per
loaded release. Anything it cannot mirror (trees, multiclass, a scaler with a window, ...) is served per event by the
learner itself, so the batch path is an optimisation, never a change of answers: :func:`predict_many` gives
``predict_with_proba``'s results within float tolerance (tests/test_learners_batch.py checks it with Hypothesis).

Feature policy as in :mod:`learners.features`: ``None``/NaN/inf are missing (contribute nothing), booleans and ints
are floats, values are clipped to +/-1e12, strings are one-hot features; a feature the model never saw contributes
nothing, exactly as River's scaler (zero variance) and weights (absent) treat it.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from learners.features import CLIP, clean_features
from learners.frozen_tree import (
    FrozenTreeRows,
    forget_recorded,
    frozen_tree_predictor,
    kept_tree_predictors,
    learner_answer,
)
from learners.kernels import KernelLR, build, dict_row, jit_enabled
from learners.live_models import _Fast, _FastLearn
from learners.snapshot import FrozenLinear, linear_parts

Result = tuple[Any, dict[Any, float]]
#: What :func:`predict_many` returns per event: ``(prediction, proba)`` or the exception predicting it raised.
Outcome = Result | Exception


class LinearMirror:
    """Scaler means, standard deviations and LR weights of one binary ``StandardScaler | LogisticRegression``
    pipeline, column-aligned in numpy (a column per feature the scaler or the weights know)."""

    def __init__(
        self,
        means: dict[str, float],
        variances: dict[str, float],
        weights: dict[str, float],
        b: float,
        indicators: bool = False,
    ):
        names = list(dict.fromkeys([*means, *variances, *weights]))
        self.index = {n: j for j, n in enumerate(names)}
        d = len(names)
        # Python lists made into arrays once: a release builds a mirror of the new served snapshot (every ~25 LR
        # labels), and setting 3 x d numpy elements one by one was most of it (~16 of ~22 us; session 25).
        mean, std, weight = [0.0] * (d + 1), [1.0] * (d + 1), [0.0] * (d + 1)
        # (the extra last column stands for every unseen feature: contributes 0)
        for j, n in enumerate(names):
            v = float(variances.get(n, 0.0))
            if v:  # zero variance: River's scaler outputs 0.0 for the feature, so it contributes nothing
                mean[j] = float(means.get(n, 0.0))
                # Python's pow, as before (numpy's ** 0.5 is a sqrt: not always the same bits)
                std[j] = v**0.5
                weight[j] = float(weights.get(n, 0.0))
            elif indicators and float(means.get(n, 0.0)) == 1.0:  # FeatureScaler passes an indicator through
                weight[j] = float(weights.get(n, 0.0))
        self.mean = np.array(mean, dtype=np.float64)
        self.std = np.array(std, dtype=np.float64)
        self.weight = np.array(weight, dtype=np.float64)
        self.unseen = d
        self.intercept = float(b)
        # Per feature-name tuple: its columns' means, standard deviations and weights (a batch's rows share one
        # tuple, and a frozen model predicts a batch in several windows).
        self._gathered: dict[tuple[str, ...], tuple[np.ndarray, np.ndarray, np.ndarray]] = {}

    def gathered(self, names: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``mean[cols]``, ``std[cols]``, ``weight[cols]`` for ``cols = columns(names)``."""
        got = self._gathered.get(names)
        if got is None:
            cols = self.columns(names)
            got = self._gathered[names] = (self.mean[cols], self.std[cols], self.weight[cols])
        return got

    def logits_plain(self, values: np.ndarray, names: tuple[str, ...]) -> np.ndarray:
        """:meth:`logits` of rows whose values are all finite and within +/-``CLIP`` (the clip and the missing
        mask then change nothing): the same operations on the same numbers."""
        mean, std, weight = self.gathered(names)
        return ((values - mean) / std) @ weight + self.intercept

    def columns(self, names: Sequence[str]) -> np.ndarray:
        get, unseen = self.index.get, self.unseen
        return np.fromiter((get(n, unseen) for n in names), dtype=np.intp, count=len(names))

    def logits(self, values: np.ndarray, names: Sequence[str]) -> np.ndarray:
        """Logits of rows ``values`` (float64, shape n x len(names), non-finite = missing) over feature ``names``."""
        cols = self.columns(names)
        z = (np.clip(values, -CLIP, CLIP) - self.mean[cols]) / self.std[cols]
        z[~np.isfinite(values)] = (
            0.0  # missing feature: absent from River's dict, so no term in the dot product
        )
        return z @ self.weight[cols] + self.intercept


def _mirror_pipeline(model: Any) -> LinearMirror | None:
    """A mirror of River ``StandardScaler() | LogisticRegression()`` (as ``learners.specs`` builds it), else None."""
    parts = linear_parts(model)
    return None if parts is None else LinearMirror(*parts)


def _snapshot_mirror(learner: FrozenLinear) -> LinearMirror:
    """The mirror of a released LR snapshot not unpickled (:mod:`learners.snapshot`), made once per snapshot from
    the statistics and weights it was frozen with: the arrays ``_mirror_pipeline`` makes of its River objects."""
    mirror = learner.__dict__.get("_snapshot_mirror")
    if mirror is None:
        mirror = learner.__dict__["_snapshot_mirror"] = LinearMirror(*learner.parts)
    return mirror


class BatchPredictor:
    """``predict_with_proba`` over a batch for one frozen ``learners.specs.Learner``."""

    def __init__(self, learner: Any) -> None:
        self.learner = learner
        self.mirror: LinearMirror | None = None
        self.inner_classes: list[Any] = []  # the LR member's classes (its P is of inner_classes[1])
        self.renormalise = (
            False  # an ``auto`` pool: the outer Learner normalises the member's distribution again
        )
        self.regression = False  # a linear regression: the mirror's output is the prediction
        # A frozen Hoeffding tree's per-event answers with each leaf's naive Bayes terms read once (set by
        # :func:`batch_predictor`, whose learner never learns again): River's answers, 1.6-2.8x faster.
        self.frozen_tree: Callable[[dict[str, float]], Outcome] | None = None
        try:
            self._find_mirror()
        except Exception:  # an unexpected model shape: served per event, as before the batch path existed
            self.mirror = None

    def _find_mirror(self) -> None:
        from learners.pool import Pool

        outer = self.learner
        if type(outer) is FrozenLinear:  # a binary LR's released snapshot (learners.snapshot): its own mirror
            self.inner_classes = list(outer._classes[:2])
            self.mirror = _snapshot_mirror(outer)
            return
        if getattr(outer, "task", None) == "regression":
            self.regression = _is_linear_regression(outer.model)
            self.mirror = _mirror_pipeline(outer.model) if self.regression else None
            return
        if getattr(outer, "task", None) != "classification" or len(getattr(outer, "_classes", ())) < 2:
            return
        target = outer
        if isinstance(outer.model, Pool):
            target = outer.model.members[outer.model.leader]
            self.renormalise = True
            if len(target._classes) < 2 or any(c not in outer._counts for c in target._classes):
                return
        if not target._binary:
            return
        self.inner_classes = list(target._classes[:2])
        self.mirror = _mirror_pipeline(target.model)

    @property
    def batched(self) -> bool:
        """True when predictions go through the numpy mirror."""
        return self.mirror is not None

    def predict_many(self, xs: Sequence[Mapping[str, Any]]) -> list[Outcome]:
        """``(prediction, proba)`` per event, in order; a record the learner raises on gets its exception."""
        out: list[Outcome | None] = [None] * len(xs)
        if self.mirror is None:
            for i, x in enumerate(xs):
                out[i] = self._one(x)
            return out  # type: ignore[return-value]
        groups: dict[tuple[str, ...], list[int]] = {}
        odd: list[int] = []
        for i, x in enumerate(xs):
            groups.setdefault(tuple(x), []).append(i)
        for names, rows in groups.items():
            try:
                values = np.array([list(xs[i].values()) for i in rows])
            except (ValueError, TypeError, OverflowError):
                odd.extend(rows)
                continue
            if values.dtype.kind not in "fiub" or values.ndim != 2:
                odd.extend(rows)  # strings, None, huge ints: the learner's own cleaning, below
                continue
            self._fill(out, rows, self.mirror.logits(values.astype(np.float64, copy=False), names), xs)
        if odd:
            cleaned: dict[tuple[str, ...], list[tuple[int, dict[str, float]]]] = {}
            for i in odd:
                try:
                    c = clean_features(xs[i])
                except Exception:  # the learner decides (it may fall back, or raise for this record alone)
                    out[i] = self._one(xs[i])
                    continue
                cleaned.setdefault(tuple(c), []).append((i, c))
            for names, items in cleaned.items():
                values = np.array([list(c.values()) for _, c in items], dtype=np.float64).reshape(
                    len(items), -1
                )
                self._fill(out, [i for i, _ in items], self.mirror.logits(values, names), xs)
        return out  # type: ignore[return-value]

    def _one(self, x: Mapping[str, Any]) -> Outcome:
        try:
            if self.frozen_tree is not None:
                return self.frozen_tree(clean_features(x))
            return self.learner.predict_with_proba(x)
        except Exception as exc:
            return exc

    def probabilities(self, logits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The learner's probabilities of ``inner_classes[0]`` and ``[1]`` from the mirror's logits."""
        # River's sigmoid: exactly 0 below -30 and 1 above 30, else 1 / (1 + exp(-z)). The clip changes no value
        # that is kept (outside [-30, 30] the masks overwrite it; NaN stays NaN) and keeps exp from overflowing,
        # so no errstate is needed (entering one, and the nested where, were ~20 % of this; session 25).
        p = 1.0 / (1.0 + np.exp(-np.clip(logits, -30.0, 30.0)))
        p[logits < -30] = 0.0
        p[logits > 30] = 1.0
        q0, q1 = 1.0 - p, p
        if self.renormalise:  # the outer Learner's normalisation, done exactly as it does it
            total = q0 + q1
            q0, q1 = q0 / total, q1 / total
        return q0, q1

    def _fill(
        self, out: list[Outcome | None], rows: list[int], logits: np.ndarray, xs: Sequence[Any]
    ) -> None:
        if self.regression:
            self._fill_regression(out, rows, logits)
            return
        q0, q1 = self.probabilities(logits)
        c0, c1 = self.inner_classes
        first = self.learner._classes[0]  # max() over classes keeps the first-seen class on a tie
        ok = np.isfinite(q0) & np.isfinite(q1)
        preds = np.where(q1 > q0, 1, np.where(q0 > q1, 0, -1)).tolist()
        labels = {1: c1, 0: c0, -1: first}
        for i, a, b, k, good in zip(rows, q0.tolist(), q1.tolist(), preds, ok.tolist(), strict=True):
            # a non-finite output (NaN weights): the learner's own fallback, per event
            out[i] = (labels[k], {c0: a, c1: b}) if good else self._one(xs[i])

    def _fill_regression(self, out: list[Outcome | None], rows: list[int], values: np.ndarray) -> None:
        # Learner.predict_one for a regressor: the running mean for a non-finite output, else the output clipped
        # to the observed target range widened by its width.
        learner = self.learner
        n, lo, hi = learner._y_n, learner._y_lo, learner._y_hi
        mean = learner._y_sum / n if n else 0.0
        width = max(hi - lo, 1e-9)
        for i, v in zip(rows, values.tolist(), strict=True):
            if not math.isfinite(v):
                out[i] = (mean, {})
            elif n:
                out[i] = (min(max(v, lo - width), hi + width), {})
            else:
                out[i] = (v, {})


def _is_linear_regression(model: Any) -> bool:
    from river import compose, linear_model

    return isinstance(model, compose.Pipeline) and any(
        type(step) is linear_model.LinearRegression for step in model.steps.values()
    )


def batch_predictor(learner: Any) -> BatchPredictor:
    """The batch path for ``learner`` (a frozen ``learners.specs.Learner``: it must not learn while this is used);
    call again after the model changes."""
    predictor = BatchPredictor(learner)
    if predictor.mirror is None:
        try:
            predictor.frozen_tree = frozen_tree_predictor(learner) or _pooled_tree(learner)
        except Exception:  # an unexpected model shape: the learner answers per event
            predictor.frozen_tree = None
    return predictor


def _pooled_tree(learner: Any) -> Callable[[dict[str, float]], Outcome] | None:
    """``learner.predict_with_proba(xc, cleaned=True)`` for a frozen ``auto`` classifier whose leader is a
    Hoeffding tree (the tree's frozen naive Bayes terms, :func:`frozen_tree_predictor`), else None.

    The leader's probabilities then go through the outer learner's own normalisation and tie-break, as
    ``Learner.predict_proba_one`` and ``predict_with_proba`` do them: the same answers as the pool's."""
    from learners.pool import Pool

    pool = getattr(learner, "model", None)
    if type(pool) is not Pool or learner.task != "classification" or len(learner._classes) < 2:
        return None
    if learner._indicators is not None:
        return None  # the outer learner completes indicators before the pool sees x (not a kind it builds)
    inner = frozen_tree_predictor(pool.members[pool.leader])
    if inner is None:
        return None
    classes, counts, slow = list(learner._classes), learner._counts, learner.predict_with_proba

    def predict(xc: dict[str, float]) -> Outcome:
        return learner_answer(inner(xc)[1], classes, counts) or slow(xc, cleaned=True)

    return predict


#: A row as the kernel reads it: the block's values, the row in it, the block's feature names.
_Row = tuple[np.ndarray, int, tuple[str, ...]]


def _pipeline(model: Any) -> bool:
    from river import compose

    return isinstance(model, compose.Pipeline)


class _Live:
    """A learning model's predict and learn over one batch: the compiled kernel (:mod:`learners.kernels`) when it
    is on (the default; ``DRIFTLINE_NO_JIT=1`` turns it off) and applies, else :mod:`learners.live_models`' paths
    (also without numba, and for other shapes).

    Held per role (champion, challenger), rebuilt when the role's learner, its model or its classes change. The
    kernel keeps what it learns in its arrays and writes it into River's objects at :meth:`sync` (the batch's
    read points, :meth:`BatchContext.sync`), before a Python path reads or learns the model here, and before it
    is dropped; it reloads its arrays if anything else learned the model while it held nothing pending."""

    __slots__ = ("fast", "fast_learn", "kernel", "learner", "model", "n_classes", "never")

    def __init__(self) -> None:
        self.learner: Any = None
        self.model: Any = None
        self.n_classes = -1
        self.kernel: KernelLR | None = None
        self.fast = _Fast()
        self.fast_learn = _FastLearn()
        # The learner (with ``self.model``) when its model can never be the kernel's (not a pipeline: a tree, a
        # pool, one-vs-rest), whatever labels come: the batch then goes to live_models' paths with no check.
        self.never: Any = None

    def _kernel(self, learner: Any) -> KernelLR | None:
        model, n_classes = learner._model, len(getattr(learner, "_classes", ()))
        if learner is not self.learner or model is not self.model or n_classes != self.n_classes:
            if self.kernel is not None:
                self.kernel.sync()  # the learner it held may still be read (a promoted challenger, a copy)
            self.learner, self.model, self.n_classes, self.kernel = learner, model, n_classes, None
            try:
                self.kernel = build(learner)
            except Exception:  # an unexpected model shape: the Python paths
                self.kernel = None
            if self.kernel is None and not _pipeline(model):
                self.never = learner
        return self.kernel

    def direct(self, learner: Any) -> bool:
        """No kernel for ``learner`` now or later (see ``never``): straight to live_models' paths."""
        return self.never is learner and learner._model is self.model

    def predict(self, learner: Any, xc: dict[str, float], batch: BatchContext) -> Any:
        kernel = self._kernel(learner)
        if kernel is not None:
            got = kernel.predict(*batch._current_row(xc))
            if got is not None:
                return got
            kernel.sync()  # a NaN answer: the learner's own fallback reads River's state
        return self.fast.predict(learner, xc)

    def learn(self, learner: Any, xc: dict[str, float], y: Any, batch: BatchContext) -> None:
        # The batch is passed rather than the rows: a model without a kernel (a tree) builds neither.
        kernel = self._kernel(learner)
        if (
            kernel is None
            or y is None
            or y not in learner._counts
            or kernel._pipeline._LEARN_UNSUPERVISED_DURING_PREDICT
        ):
            if kernel is not None:
                kernel.sync()
            self.fast_learn.learn(learner, xc, y)  # a new label goes to the learner (the kernel then reloads)
            return
        kernel.learn(xc, *batch._current_row(xc), y, batch._next_row())

    def sync(self) -> None:
        if self.kernel is not None:
            self.kernel.sync()


#: A frozen model's answers over a batch: labels, P(c0), P(c1), usable, (c0, c1).
_Table = tuple[list[Any], list[float], list[float], list[bool], tuple[Any, Any]]
#: Per frozen model (by id): [learner, its BatchPredictor or None, else a per-event shortcut or None,
#: its answers over rows lo..hi-1 (a _Table, or for a frozen tree a list of results or None) or None, lo, hi, rows
#: of its next pass, last position asked, a frozen tree's FrozenTreeRows or None, consecutive positions asked].
_Frozen = list[Any]


class BatchContext:
    """Predictions over one batch of labelled examples for ``ModelLifecycle.learn_batch``.

    Frozen models (the served snapshot, probation's previous model) never learn, so where :class:`BatchPredictor`
    mirrors them, the next ``WINDOW`` rows of the batch are predicted in one numpy pass the first time a position
    asks, and again when the position leaves that window or the lifecycle serves another model (a release replaces
    the object, so identity tells). A window rather than the whole batch: after a release only the rows still ahead
    are worth predicting, and the trainer's batches reach 5,000 rows with LR releasing every few hundred labels
    (predicting the whole batch per release made a 4,000-row batch ~15 % slower per label than 500 rows). A new
    model's first window is ``FIRST_WINDOW`` rows and each refill doubles it up to ``WINDOW``: an LR snapshot is
    asked ~50 labels as the served model, then ~50 more as probation's previous model (releases every ~50
    labels), and a numpy pass costs ~45 us plus ~0.2 us a row, so 128 rows cover both for ~70 % of the price of
    256. When a seventh model arrives, the least recently asked entry goes (it cleared all of them before): the
    replaced snapshot keeps its mirror and rows. On the bench's 20,000 LR labels in batches of 4,000 (397
    releases): 707 -> 416 entries built, 706 -> 526 numpy passes, 175,136 -> 79,354 rows predicted. Learning
    models (champion, challenger) predict and learn one example at a time: a binary LR through
    :func:`learners.live_models._fast_binary_lr` and ``_fast_binary_lr_learn``, a Hoeffding tree through
    :func:`learners.frozen_tree.learning_tree_predictor` (its naive Bayes answer reused by the learn). The rows are
    cleaned once per batch (:meth:`cleaned`). A frozen Hoeffding tree asked ``ahead`` (a sentinel copy) predicts
    the rows ahead with :class:`learners.frozen_tree.FrozenTreeRows` once asked at ``TREE_RUN`` consecutive
    positions; its predictors are kept across batches (:func:`learners.frozen_tree.kept_tree_predictors`).
    """

    # Served, previous, the reference snapshot (``lifecycle.WATCH_LABELS``), the sentinel's copies (up to four
    # while early copies overlap), and the ones they replaced within this batch. At 6 (before session 24) the
    # reference and four copies made seven models asked at every label: each label evicted one still asked and
    # rebuilt it (an LR mirror and a numpy pass per label; 20,000 LR labels: 3,273 entries built against 471
    # without the reference). Answers do not depend on it, only how often they are computed again.
    MAX_FROZEN = 12
    WINDOW = 256  # the most rows a frozen model predicts per numpy pass
    FIRST_WINDOW = 128  # rows of a new entry's first pass; doubled at each refill up to WINDOW
    # A frozen Hoeffding tree (``FrozenTreeRows``) predicts rows ahead only once it has been asked at this many
    # consecutive positions (a sentinel copy is asked at every label; the served snapshot only while examples
    # carry no current answer, which in a worker is mostly the labels just after a release), starting with
    # TREE_FIRST_WINDOW rows: a window predicted and not asked costs ~5 us a row.
    TREE_RUN = 8
    TREE_FIRST_WINDOW = 32

    def __init__(self, xs: Sequence[Mapping[str, Any]]) -> None:
        self.xs = list(xs)
        self._blocks: list[tuple[tuple[str, ...], np.ndarray, np.ndarray]] | None = None
        self._floats: list[bool] = []  # per block of :meth:`blocks`: all its values Python floats
        self._plain: list[bool | None] | None = None
        self._clean: list[dict[str, float] | None] | None = None
        self._frozen: dict[int, _Frozen] = {}
        self._champion = _Live()
        self._challenger = _Live()
        # Else live_models' paths straight away (DRIFTLINE_NO_JIT=1). numba itself is imported only for a model
        # the kernel runs (kernels.build): a tree's trainer never pays it.
        self._jit = jit_enabled()
        # Where each row is in its block (rows whose cleaned features are the row itself), and the row asked last.
        self._where: list[tuple[int, int] | None] | None = None
        self._pos = -1
        self._xc: dict[str, float] | None = None
        self._row: _Row | None = None
        self._reader: _SyncedCopy | None = None

    def blocks(self) -> list[tuple[tuple[str, ...], np.ndarray, np.ndarray]]:
        """The batch's numeric rows as float matrices, one per feature-name tuple: extracted once per batch,
        whatever number of frozen models predict it. Rows with strings, ``None`` or huge ints are left out (the
        learner predicts them itself)."""
        if self._blocks is None:
            groups: dict[tuple[str, ...], list[int]] = {}
            for i, x in enumerate(self.xs):
                groups.setdefault(tuple(x), []).append(i)
            self._blocks = []
            self._floats = []
            xs = self.xs
            for names, rows in groups.items():
                selected = [xs[i] for i in rows]
                # One flat list of the block's values: its types in one pass (a block of Python floats only, the
                # usual, is one float64 array of them, the same numbers; :meth:`_clean_all` reuses the answer), and
                # anything else as before (numpy infers the type of nested lists). Session 25: ~30 % less per batch.
                flat = list(itertools.chain.from_iterable([x.values() for x in selected]))
                floats = bool(flat) and set(map(type, flat)) == {float}
                if floats:
                    values = np.array(flat, dtype=np.float64).reshape(len(rows), len(names))
                else:
                    try:
                        values = np.array([list(x.values()) for x in selected])
                    except (ValueError, TypeError, OverflowError):
                        continue
                if values.dtype.kind in "fiub" and values.ndim == 2:
                    self._blocks.append((names, np.array(rows), values.astype(np.float64, copy=False)))
                    self._floats.append(floats)
        return self._blocks

    def cleaned(self, pos: int) -> dict[str, float]:
        """``clean_features(xs[pos])``: for a batch of plain float rows, checked once per batch (the rows of a
        block whose values are all floats, finite and within the clip are copied as they are, which is what
        ``clean_features``' own fast path returns; any other row is cleaned by it)."""
        if self._clean is None:
            self._clean = self._clean_all()
        xc = self._clean[pos]
        if xc is None:
            xc = clean_features(self.xs[pos])
        self._pos, self._xc, self._row = pos, xc, None
        return xc

    def _clean_all(self) -> list[dict[str, float] | None]:
        xs = self.xs
        out: list[dict[str, float] | None] = [None] * len(xs)
        where: list[tuple[int, int] | None] = [None] * len(xs)
        self._where = where
        blocks = self.blocks()
        for b, (_names, rows, values) in enumerate(blocks):
            # Ints and booleans (floats in the matrix) are cleaned per row (:meth:`blocks` found the types).
            if not self._floats[b]:
                continue
            idx = rows.tolist()
            with np.errstate(invalid="ignore"):
                good = (np.abs(values) <= CLIP).all(axis=1)  # NaN and +/-inf fail the comparison
            for r, (i, ok) in enumerate(zip(idx, good.tolist(), strict=True)):
                if ok:
                    out[i] = dict(xs[i])
                    where[i] = (b, r)
        return out

    def _current_row(self, xc: dict[str, float]) -> _Row:
        """``xc`` (the features :meth:`cleaned` returned last) as the kernel reads it: its row of the batch's block
        when the cleaned features are the row itself, else a one-row block of its own (built once per label)."""
        row = self._row
        if row is None or xc is not self._xc:
            where = self._where[self._pos] if self._where is not None and xc is self._xc else None
            if where is not None:
                names, _, values = self.blocks()[where[0]]
                row = (values, where[1], names)
            else:
                row = dict_row(xc)
            if xc is self._xc:
                self._row = row
        return row

    def _predict_rows(self, learner: Any, predictor: BatchPredictor, lo: int, hi: int) -> _Table:
        """``learner``'s answers (through its mirror ``predictor``) for rows ``lo``..``hi - 1``, at ``i - lo``."""
        n, mirror = hi - lo, predictor.mirror
        assert mirror is not None  # only mirrored models get a table (``_entry``)
        blocks = self.blocks()
        plain = self._plain_blocks()
        if len(blocks) == 1 and plain[0] is True:
            # The usual batch: every row one block of plain floats, in order (rows lo..hi-1 are values[lo:hi]).
            names, _, values = blocks[0]
            q0, q1 = predictor.probabilities(mirror.logits_plain(values[lo:hi], names))
        else:
            q0, q1 = np.full(n, np.nan), np.full(n, np.nan)  # NaN: not in a block, predicted per event
            for (names, rows, values), contiguous in zip(blocks, plain, strict=True):
                if lo > 0 or hi < len(self.xs):
                    take = (rows >= lo) & (rows < hi)
                    if not take.any():
                        continue
                    rows, values = rows[take], values[take]
                if contiguous is None:
                    logits = mirror.logits(values, names)
                else:
                    logits = mirror.logits_plain(values, names)
                q0[rows - lo], q1[rows - lo] = predictor.probabilities(logits)
        c0, c1 = predictor.inner_classes
        # max() over classes keeps the first class on a tie: the labels taken from an object array (the classes
        # themselves, not copies) in one numpy pass rather than a dict lookup per row.
        labels = np.empty(3, dtype=object)
        labels[0], labels[1], labels[2] = c0, c1, learner._classes[0]
        preds = labels[np.where(q1 > q0, 1, np.where(q0 > q1, 0, 2))].tolist()
        ok = (np.isfinite(q0) & np.isfinite(q1)).tolist()
        return preds, q0.tolist(), q1.tolist(), ok, (c0, c1)

    def _plain_blocks(self) -> list[bool | None]:
        """Per block of :meth:`blocks`: True when every value is finite and within +/-``CLIP`` and the block is
        the whole batch in order, False when only the values are, None otherwise; computed once per batch."""
        if self._plain is None:
            n = len(self.xs)
            self._plain = []
            for _, rows, values in self.blocks():
                with np.errstate(invalid="ignore"):
                    clean = bool((np.abs(values) <= CLIP).all())  # NaN and +/-inf fail the comparison
                whole = len(rows) == n and bool((rows == np.arange(n)).all())
                self._plain.append(whole if clean else None)
        return self._plain

    def _entry(self, learner: Any) -> _Frozen:
        """A new frozen model's entry: its mirror (no rows predicted yet), else a per-event shortcut."""
        if len(self._frozen) >= self.MAX_FROZEN:
            # The least recently asked goes: a replaced snapshot is still asked (as probation's previous model).
            del self._frozen[min(self._frozen, key=lambda k: self._frozen[k][7])]
        predictor: BatchPredictor | None = None
        fn: Callable[[dict[str, float]], Any] | None = None
        rows: FrozenTreeRows | None = None
        try:
            predictor = BatchPredictor(learner)
            if predictor.mirror is None or predictor.regression:
                predictor = None
                fn, rows = kept_tree_predictors(learner)
                if fn is None:
                    fn = _pooled_tree(learner)
        except Exception:  # an unexpected model shape: predicted by the learner itself
            predictor, fn, rows = None, None, None
        first = self.TREE_FIRST_WINDOW if rows is not None else self.FIRST_WINDOW
        entry = self._frozen[id(learner)] = [learner, predictor, fn, None, 0, 0, first, -1, rows, 0]
        return entry

    def _tree_rows(self, rows: FrozenTreeRows, lo: int, hi: int) -> list[Result | None]:
        """A frozen tree's answers for rows ``lo``..``hi - 1`` (at ``i - lo``; None: per event), over the rows of
        each block whose cleaned features are the row itself (:meth:`cleaned`)."""
        out: list[Result | None] = [None] * (hi - lo)
        if self._clean is None:
            self._clean = self._clean_all()
        clean = self._clean
        for names, block_rows, values in self.blocks():
            take = (block_rows >= lo) & (block_rows < hi)
            idx = block_rows[take].tolist()
            if not idx:
                continue
            vals = values[take]
            keep = [k for k, i in enumerate(idx) if clean[i] is not None]
            if len(keep) < len(idx):
                idx, vals = [idx[k] for k in keep], vals[keep]
                if not idx:
                    continue
            got = rows.predict([clean[i] for i in idx], names, vals)
            for i, r in zip(idx, got, strict=True):
                out[i - lo] = r
        return out

    def _frozen_tree(self, entry: _Frozen, pos: int, xc: dict[str, float], ahead: bool) -> Result:
        rows, fn = entry[8], entry[2]
        entry[9] = entry[9] + 1 if entry[7] == pos - 1 else 1
        entry[7] = pos
        lo, hi = entry[4], entry[5]
        if not lo <= pos < hi:
            if not ahead or entry[9] < self.TREE_RUN:
                return fn(xc)
            size = entry[6]
            entry[6] = min(2 * size, self.WINDOW)
            lo, hi = pos, min(len(self.xs), pos + size)
            try:
                entry[3] = self._tree_rows(rows, lo, hi)
            except Exception:  # an unexpected model shape: per event from now on
                entry[8], entry[3] = None, None
                return fn(xc)
            entry[4], entry[5] = lo, hi
        got = entry[3][pos - lo]
        return fn(xc) if got is None else got

    def frozen(self, learner: Any, pos: int, xc: dict[str, float], ahead: bool = False) -> Result:
        """``learner.predict_with_proba(xc, cleaned=True)`` for the example at ``pos`` (``xc`` its cleaned x).

        ``ahead``: the caller will ask this model at the following positions too (a sentinel copy, asked at every
        label for thousands of labels), so a frozen tree predicts the rows ahead in numpy. Without it a frozen
        tree answers per row: the served snapshot is replaced at each release (~every 120 tree labels), and rows
        predicted ahead for it were half wasted (trainer_split: 44,000 rows predicted for 20,000 asked)."""
        entry = self._frozen.get(id(learner))
        if entry is None or entry[0] is not learner:
            entry = self._entry(learner)
        if entry[8] is not None:
            return self._frozen_tree(entry, pos, xc, ahead)
        predictor, lo = entry[1], entry[4]
        entry[7] = pos
        if predictor is not None and not lo <= pos < entry[5]:
            size = entry[6]
            entry[6] = min(2 * size, self.WINDOW)
            lo, hi = pos, min(len(self.xs), pos + size)
            try:
                entry[3] = self._predict_rows(learner, predictor, lo, hi)
            except Exception:  # an unexpected model shape: predicted by the learner itself
                entry[1] = predictor = None
                entry[3] = None
            entry[4], entry[5] = lo, hi
        table = entry[3]
        if (
            table is None or not table[3][pos - lo]
        ):  # per event; also a non-finite output (the learner's fallback)
            if entry[2] is not None:
                return entry[2](xc)
            return learner.predict_with_proba(xc, cleaned=True)
        preds, q0, q1, _, (c0, c1) = table
        i = pos - lo
        return preds[i], {c0: q0[i], c1: q1[i]}

    def frozen_label(self, learner: Any, pos: int, xc: dict[str, float], ahead: bool = False) -> Any:
        """``frozen(...)[0]``: the label alone (the sentinel's copies and probation's previous model are asked for
        nothing else), read straight from a mirrored model's rows when this position is in them."""
        entry = self._frozen.get(id(learner))
        if entry is None or entry[0] is not learner:
            return self.frozen(learner, pos, xc, ahead)[0]
        if entry[8] is not None:
            return self._frozen_tree(entry, pos, xc, ahead)[0]
        if entry[4] <= pos < entry[5]:
            table = entry[3]
            if table is not None and entry[1] is not None:
                i = pos - entry[4]
                if table[3][i]:
                    entry[7] = pos
                    return table[0][i]
        return self.frozen(learner, pos, xc, ahead)[0]

    def champion(self, learner: Any, xc: dict[str, float]) -> Any:
        """``learner.predict_one(xc, cleaned=True)`` for the learning champion (``xc``: what :meth:`cleaned`
        returned for this label): the compiled kernel, or ``live_models._fast_binary_lr``, or the learner."""
        forget_recorded()  # a new label: what an earlier one recorded and did not take back is stale
        live = self._champion
        if not self._jit or live.direct(learner):
            return live.fast.predict(learner, xc)
        return live.predict(learner, xc, self)

    def challenger(self, learner: Any, xc: dict[str, float]) -> Any:
        live = self._challenger
        if not self._jit or live.direct(learner):
            return live.fast.predict(learner, xc)
        return live.predict(learner, xc, self)

    def learn_champion(self, learner: Any, xc: dict[str, float], y: Any) -> None:
        """``learner.learn_one(xc, y, cleaned=True)``: the compiled kernel, or
        ``live_models._fast_binary_lr_learn``, or the learner."""
        live = self._champion
        if not self._jit or live.direct(learner):
            live.fast_learn.learn(learner, xc, y)
            return
        live.learn(learner, xc, y, self)

    def learn_challenger(self, learner: Any, xc: dict[str, float], y: Any) -> None:
        live = self._challenger
        if not self._jit or live.direct(learner):
            live.fast_learn.learn(learner, xc, y)
            return
        live.learn(learner, xc, y, self)

    def _next_row(self) -> _Row | None:
        """The next label's row in its block (for the kernel to predict it after this learn), if it has one."""
        where, pos = self._where, self._pos + 1
        if where is None or pos >= len(where) or (at := where[pos]) is None:
            return None
        names, _, values = self.blocks()[at[0]]
        return values, at[1], names

    def sync(self) -> None:
        """The champion's and challenger's River objects as their learns left them: call before anything reads
        or copies either model between two labels (a release's copy, a judgement, the sentinel's or a drift
        alarm's copy) and at the batch's end. The compiled kernel keeps what it learns in arrays and writes it
        back only here (~4 us per label less than after every label); without it a no-op."""
        if self._jit:
            self._champion.sync()
            self._challenger.sync()

    def reading(self, learner: Any) -> Any:
        """``learner`` for a reader that may copy it (:meth:`learners.sentinel.SnapshotSentinel.learned`, which
        copies the champion now and then, nobody knows when in advance): its ``copy()`` syncs first."""
        if self._champion.kernel is None and self._challenger.kernel is None:
            return learner  # no kernel holds anything: River's objects are the state (a tree, the fallback)
        reader = self._reader
        if reader is None or reader.learner is not learner:
            reader = self._reader = _SyncedCopy(learner, self.sync)
        return reader

    def close(self) -> None:
        """The batch is over: River's objects as the kernel left them (:meth:`sync`), and a learning tree's
        recorded answers dropped (see :mod:`learners.frozen_tree`)."""
        self.sync()
        forget_recorded()


class _SyncedCopy:
    """A learner whose ``copy()`` first writes the batch's kernels back into River's objects
    (:meth:`BatchContext.reading`); anything else is the learner's own."""

    __slots__ = ("learner", "sync")

    def __init__(self, learner: Any, sync: Callable[[], None]) -> None:
        self.learner, self.sync = learner, sync

    def copy(self) -> Any:
        self.sync()
        return self.learner.copy()

    def __getattr__(self, name: str) -> Any:
        self.sync()  # a reader of anything else: River's state too
        return getattr(self.learner, name)
