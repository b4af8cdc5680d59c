"""A compiled predict and learn for a learning binary ``FeatureScaler | LogisticRegression`` (numba), used by the
trainer's batches (:class:`learners.batch.BatchContext`) for the champion and a challenger.

Why: the champion predicts and learns every label, and after the flattening in :mod:`learners.live_models` its
cost is the Python interpreter walking ~20 features (issue 16: ~20 us per label of the lifecycle's ~60). Here the
scaler's statistics, the weights and the intercept sit in numpy arrays while a batch runs, one column per feature
name; a row's features are a row of the batch's float block (:meth:`BatchContext.blocks`), and numba runs River's
arithmetic over it. River's objects stay the truth for every reader: the kernel keeps what it learns in its
arrays and writes it into River's dicts at :meth:`KernelLR.sync` (``dict.update`` over the keys learned, in the
order River first inserted them, as the key objects River would have inserted), which the batch calls at every
read point (:meth:`learners.batch.BatchContext.sync`: a judgement, a release's copy, the sentinel's copies, a
drift alarm's copy, a Python path reading or learning the model, the batch's end, so a checkpoint). Writing back
after every label, as session 16 did, cost ~4 us per label; the reads come every ~50 labels. The arrays are
rebuilt from River's objects whenever the model changed under them (a new batch, another learner or model, a
learn through River's own path: a new label, ``opt.n_iterations`` moved), and a learn outside the kernel while
it holds labels (a read point without a sync) raises at the next sync instead of mixing the two states.

Same arithmetic in the same order as :func:`learners.live_models._fused_lr_learn` and ``_fast_binary_lr``, so
the learned state and the predictions are bit for bit the same (tests/test_learners_kernels.py). Two traps:
``v ** 0.5`` with a constant exponent is compiled to ``sqrt``, which differs from CPython's libm ``pow`` in the
last bit for ~0.1 % of values, so the exponent is read from the parameters array at run time (libm ``pow``, as
CPython calls it); and Python's ``max(min(g, clip), -clip)`` is spelled out (its NaN behaviour is not numba's).
No fast-math (numba's default): no reassociation, and no fused multiply-add here (the tests compare every bit).

On by default (numba is a dependency; BENCHMARKS.md, session 17: ``learn_batch`` ~51 -> ~37 us per LR label
in process); ``DRIFTLINE_NO_JIT=1`` (or ``DRIFTLINE_JIT=0``), or numba missing or failing to compile, and
:func:`kernels` is None: the batch uses the pure-Python flattened path, with the same results. A train worker
loads it at its start (:func:`warm_for`), before it freezes the start's objects, so no label pays it.
``cache=True`` keeps the compiled code next to this file, so a worker's start pays the compilation (~0.7 s CPU)
once per machine and then ~0.3 s (numba's import and the cache).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from learners.features import FeatureScaler
from learners.jit import jit_enabled

__all__ = ["jit_enabled"]  # (re-exported: its callers import it from here)

# Parameters array (``P``): the intercept, the learning rates, the clip, the loss's class weights, and 0.5 as
# data (a constant exponent would be compiled to sqrt).
_INTERCEPT, _RATE, _INTERCEPT_RATE, _CLIP, _WEIGHT_POS, _WEIGHT_NEG, _HALF = range(7)
# State rows (``S``): per column, the scaler's mean and variance, the weight, and 1.0 once the key is in the
# scaler's ``vars`` (a key it has learned: the prediction leaves the others out, as ``_fast_binary_lr`` does).
_MEAN, _VAR, _W, _LEARNED = range(4)


def _predict_py(S: Any, cols: Any, block: Any, r: int, P: Any) -> float:
    """P(classes[1]) for row ``r`` of ``block`` over columns ``cols``: ``_fast_binary_lr``'s ``proba``."""
    half = P[_HALF]
    dot = 0.0
    for k in range(cols.shape[0]):
        j = cols[k]
        if S[_LEARNED, j] == 0.0:
            continue  # never learned: a 0.0 term, left out
        xi = block[r, k]
        v = S[_VAR, j]
        m = S[_MEAN, j]
        if v != 0.0:  # NaN is truthy in Python too
            ti = (xi - m) / v**half
        elif m == 1.0:
            ti = xi  # FeatureScaler: an indicator passes
        else:
            ti = 0.0
        dot += S[_W, j] * ti
    z = dot + P[_INTERCEPT]
    # utils.math.sigmoid
    if z < -30.0:
        return 0.0
    if z > 30.0:
        return 1.0
    return 1.0 / (1.0 + np.exp(-z))


def _learn_py(
    S: Any,
    C: Any,
    cols: Any,
    block: Any,
    r: int,
    P: Any,
    target: bool,
    W: Any,
    Wc: Any,
    ncols: Any,
    nblock: Any,
    nr: int,
) -> float:
    """One ``_fused_lr_learn`` step on row ``r`` of ``block``: the Welford update, the transform, the dot, the
    clamped log-loss gradient, the intercept, then SGD on the row's weights. The row's new means, variances and
    weights are also left in ``W`` (rows 0-2; row 3 is the transform) and its counts in ``Wc``, in the row's
    order: contiguous, for the write-back into River's dicts.

    Then, with ``nr >= 0``, the prediction for row ``nr`` of ``nblock`` (over ``ncols``) from the learned state,
    which is what ``_predict_py`` would answer for the next label if nothing learns before it: its P(classes[1]),
    else -1.0. (One call per label instead of two: a call costs about as much as the arithmetic.)"""
    half = P[_HALF]
    dot = 0.0
    n = cols.shape[0]
    for k in range(n):
        j = cols[k]
        xi = block[r, k]
        c = C[j] + 1
        C[j] = c
        Wc[k] = c
        old_mean = S[_MEAN, j]
        mean = old_mean + (xi - old_mean) / c
        S[_MEAN, j] = mean
        v = S[_VAR, j]
        v = v + ((xi - old_mean) * (xi - mean) - v) / c
        S[_VAR, j] = v
        S[_LEARNED, j] = 1.0
        W[0, k] = mean
        W[1, k] = v
        if v != 0.0:
            ti = (xi - mean) / v**half
        elif mean == 1.0:
            ti = xi
        else:
            ti = 0.0
        W[3, k] = ti
        dot += S[_W, j] * ti
    y_pred = dot + P[_INTERCEPT]
    # optim.losses.Log.gradient (y_true in {-1, 1}, as an integer there: a multiplication by it is exact)
    if target:
        yt = 1.0
        weight = P[_WEIGHT_POS]
    else:
        yt = -1.0
        weight = P[_WEIGHT_NEG]
    z = y_pred * yt
    if z > 18.0:
        g = weight * np.exp(-z) * -yt
    elif z < -18.0:
        g = weight * -yt
    else:
        g = weight * -yt / (np.exp(z) + 1.0)
    # utils.math.clamp as written: max(min(g, clip), -clip), Python's NaN behaviour (a NaN passes)
    clip = P[_CLIP]
    if clip < g:
        g = clip
    if -clip > g:
        g = -clip
    P[_INTERCEPT] = P[_INTERCEPT] - P[_INTERCEPT_RATE] * g
    rate = P[_RATE]
    for k in range(n):
        j = cols[k]
        w = S[_W, j] - rate * (W[3, k] * g)
        S[_W, j] = w
        W[2, k] = w
    if nr < 0:
        return -1.0
    # _predict_py, the same lines (a compiled function calls only compiled ones, and this one is compiled alone)
    dot = 0.0
    for k in range(ncols.shape[0]):
        j = ncols[k]
        if S[_LEARNED, j] == 0.0:
            continue
        xi = nblock[nr, k]
        v = S[_VAR, j]
        m = S[_MEAN, j]
        if v != 0.0:
            ti = (xi - m) / v**half
        elif m == 1.0:
            ti = xi
        else:
            ti = 0.0
        dot += S[_W, j] * ti
    z = dot + P[_INTERCEPT]
    if z < -30.0:
        return 0.0
    if z > 30.0:
        return 1.0
    return 1.0 / (1.0 + np.exp(-z))


_Kernels = tuple[Callable[..., float], Callable[..., float]]
# A row plan: its columns, its keys, scratch for the kernel (``W``: row 3 the transform; rows 0-2 and ``Wc`` the
# row's new statistics, weights and counts, which session 16 wrote back per label and :meth:`KernelLR.sync` now
# reads from the state arrays instead), an unused slot, whether the learner's vocabulary holds all its keys (it
# only grows: once true, true), and the last sync whose keys to write back include the row's (``_epoch``).
_Plan = list[Any]
_compiled: _Kernels | None = None
_tried = False


def kernels() -> _Kernels | None:
    """The compiled ``(predict, learn)``, or None: not switched on (:func:`jit_enabled`), or no numba. numba is
    imported (~0.2 s) and the kernels compiled (~0.4 s) or loaded from the cache at the first call, not at
    import."""
    global _compiled, _tried
    if not jit_enabled():
        return None
    if not _tried:
        _tried = True
        try:
            import numba
        except ImportError:
            return None
        # nogil: the compiled loop lets the worker's other Python threads run. cache=True keeps the compiled code
        # next to this file, or in numba's user cache dir when that is read-only; with neither writable numba
        # refuses to cache, and the kernels are compiled per process instead (~0.7 s CPU at the start).
        for cache in (True, False):
            try:
                _compiled = (
                    numba.njit(cache=cache, nogil=True)(_predict_py),
                    numba.njit(cache=cache, nogil=True)(_learn_py),
                )
                break
            except Exception:  # no cache locator (read-only install): compiled per process
                _compiled = None
    return _compiled


def kernel_shape(learner: Any) -> tuple[list[Any], Any, Any, Any] | None:
    """``(classes, pipeline, scaler, lr)`` when the kernel computes exactly what ``_fused_lr_learn`` does: the
    shape it flattens (``_binary_scaled_lr``, ``FeatureScaler``, SGD, no L1/L2, zero-initialised weights, River's
    ``learn_one`` methods) with constant learning rates (a scheduler's rate is read per step in Python)."""
    from river import compose, linear_model, optim, preprocessing
    from river.utils.vectordict import VectorDict

    from learners.live_models import _binary_scaled_lr

    shape = _binary_scaled_lr(learner)
    if shape is None:
        return None
    _, model, scaler, lr = shape
    opt = lr.optimizer
    if (
        type(scaler) is not FeatureScaler
        or type(scaler).learn_one is not preprocessing.StandardScaler.learn_one
    ):
        return None
    if type(opt) is not optim.SGD or lr.l1 != 0 or lr.l2 or type(lr._weights) is not VectorDict:
        return None
    if type(lr.initializer) is not optim.initializers.Zeros or lr.initializer.value != 0.0:
        return None
    if (
        type(opt.lr) is not optim.schedulers.Constant
        or type(lr.intercept_lr) is not optim.schedulers.Constant
    ):
        return None
    if (
        type(model).learn_one is not compose.Pipeline.learn_one
        or type(lr).learn_one is not linear_model.base.GLM.learn_one
    ):
        return None
    return shape


class KernelLR:
    """One learning LR learner's state in arrays for the length of a batch, with the compiled predict and learn.

    :meth:`predict` and :meth:`learn` take a row as ``(block, r, names)``: row ``r`` of a float block whose
    columns are the features ``names`` (their columns here come from :meth:`plan`). :meth:`predict` answers None
    for a NaN probability (the caller's Python path decides, as ``_fast_binary_lr`` does); a model shape the
    kernel does not compute exactly gets no :class:`KernelLR` at all (:func:`build`)."""

    def __init__(self, learner: Any, shape: tuple[list[Any], Any, Any, Any], compiled: _Kernels) -> None:
        classes, model, scaler, lr = shape
        self.learner, self.model = learner, learner._model
        self.n_classes = len(learner._classes)
        self.c0, self.c1 = classes
        self._pipeline, self._scaler, self._lr = model, scaler, lr
        self._predict, self._learn = compiled
        self._load()

    def _load(self) -> None:
        """The arrays from River's objects (the truth)."""
        scaler, lr = self._scaler, self._lr
        counts, means, vars_ = scaler.counts, scaler.means, scaler.vars
        weights = lr._weights.to_dict()
        names = list(dict.fromkeys([*counts, *means, *vars_, *weights]))
        self.index = {n: j for j, n in enumerate(names)}
        cap = max(64, 2 * len(names))
        self.S = np.zeros((4, cap))
        self.C = np.zeros(cap, dtype=np.int64)
        for n, j in self.index.items():
            self.C[j] = counts.get(n, 0)
            self.S[_MEAN, j] = means.get(n, 0.0)
            self.S[_VAR, j] = vars_.get(n, 0.0)
            self.S[_W, j] = weights.get(n, 0.0)
            self.S[_LEARNED, j] = 1.0 if n in vars_ else 0.0
        opt = lr.optimizer
        loss = lr.loss
        self.P = np.array(
            [
                lr.intercept,
                opt.lr.learning_rate,
                lr.intercept_lr.learning_rate,
                lr.clip_gradient,
                loss.weight_pos,
                loss.weight_neg,
                0.5,
            ],
            dtype=np.float64,
        )
        self._plans: dict[tuple[str, ...], _Plan] = {}
        self._iterations = opt.n_iterations  # River's count plus the labels pending (not yet synced)
        self._n_vars = len(vars_)
        self._pending = 0  # labels learned in the arrays and not yet written into River's objects
        # The keys learned since the last sync, in River's first-insertion order, as the objects to insert, with
        # their columns; and which sync it is (a plan's keys join ``_order`` once per sync: the plan's last field).
        self._order: dict[str, int] = {}
        self._epoch = getattr(self, "_epoch", 0) + 1
        # The next row's prediction left by the last learn: (block, row, P(classes[1]), iterations then).
        self._ahead: tuple[np.ndarray, int, float, int] | None = None

    def fresh(self) -> bool:
        """Nothing learned outside the kernel since it last wrote River's state (else reload the arrays). While
        the kernel holds labels River has not seen (``_pending``) River's state is behind by design: everything
        that reads or learns the model outside the kernel syncs first."""
        if self._pending:
            return True
        lr = self._lr
        if lr.optimizer.n_iterations != self._iterations or len(self._scaler.vars) != self._n_vars:
            self._load()
            return False
        return True

    def plan(self, names: tuple[str, ...]) -> _Plan:
        """The columns of ``names`` and the row's scratch buffers (a new name gets a column, its state read from
        River: zeros)."""
        got = self._plans.get(names)
        if got is None:
            index = self.index
            for n in names:
                if n not in index:
                    self._add(n)
            k = len(names)
            cols = np.array([index[n] for n in names], dtype=np.intp)
            scratch = [np.zeros((4, k)), np.zeros(k, np.int64), None, False, -1]
            got = self._plans[names] = [cols, list(names), *scratch]
        return got

    def _add(self, name: str) -> None:
        j = len(self.index)
        if j >= self.C.shape[0]:
            cap = 2 * j
            S = np.zeros((4, cap))
            S[:, :j] = self.S[:, :j]
            C = np.zeros(cap, dtype=np.int64)
            C[:j] = self.C[:j]
            self.S, self.C = S, C
        self.index[name] = j
        scaler, w = self._scaler, self._lr._weights
        self.C[j] = scaler.counts.get(name, 0)
        self.S[_MEAN, j] = scaler.means.get(name, 0.0)
        self.S[_VAR, j] = scaler.vars.get(name, 0.0)
        self.S[_W, j] = w.get(name, 0.0)
        self.S[_LEARNED, j] = 1.0 if name in scaler.vars else 0.0

    def predict(self, block: np.ndarray, r: int, names: tuple[str, ...]) -> Any:
        """``_fast_binary_lr``'s prediction for the row, or None (NaN: the learner's own fallback decides)."""
        ahead = self._ahead
        if (
            self.fresh()
            and ahead is not None
            and ahead[1] == r
            and ahead[0] is block
            and ahead[3] == self._iterations
        ):
            p = ahead[2]  # predicted by the last learn, from the state it left (see _learn_py)
        else:
            cols = self.plan(names)[0]
            p = self._predict(self.S, cols, block, r, self.P)
        if not 0.0 <= p <= 1.0:
            return None
        return self.c1 if p > 1.0 - p else self.c0

    def proba(self, block: np.ndarray, r: int, names: tuple[str, ...]) -> float:
        """P(classes[1]) for the row (for the tests)."""
        self.fresh()
        cols = self.plan(names)[0]
        return float(self._predict(self.S, cols, block, r, self.P))

    def learn(
        self,
        xc: dict[str, float],
        block: np.ndarray,
        r: int,
        names: tuple[str, ...],
        y: Any,
        ahead: tuple[np.ndarray, int, tuple[str, ...]] | None = None,
    ) -> None:
        """``_fused_lr_learn``'s learn of a known label (``xc``, read as the row), kept in the arrays until
        :meth:`sync`; with ``ahead`` (the next label's row) also that row's prediction, for :meth:`predict`."""
        if not self._pending:
            self.fresh()
        plan = self.plan(names)
        cols, _, W, Wc, _, admitted, epoch = plan
        if not admitted:
            known = self.learner._known
            if known is not None and known.keys() >= set(names):
                plan[5] = True
            else:
                xa = self.learner.admit(xc)  # Learner.learn_one: the keys this learner may learn
                if xa is not xc:
                    block, r, names = dict_row(xa)
                    xc = xa
                    plan = self.plan(names)
                    cols, _, W, Wc, _, _, epoch = plan
        if epoch != self._epoch:
            # The row's keys join those to write back, in the order River first inserts them, as the objects it
            # inserts (this label's own keys: the same pickles, byte for byte).
            order = self._order
            for k, j in zip(xc, cols.tolist(), strict=True):
                if k not in order:
                    order[k] = j
            plan[6] = self._epoch
        if ahead is None:
            nblock, nr, ncols = block, -1, cols
        else:
            nblock, nr, nnames = ahead
            # The same block (the usual next row): the same columns. Else its plan, before the call (a new
            # name's column may grow the arrays).
            ncols = cols if nnames is names else self.plan(nnames)[0]
        self.learner._counts[y] += 1
        p = self._learn(self.S, self.C, cols, block, r, self.P, y == self.c1, W, Wc, ncols, nblock, nr)
        self._pending += 1
        self._iterations += 1
        self._ahead = None if nr < 0 else (nblock, nr, p, self._iterations)

    def sync(self) -> None:
        """Write what the kernel learned since the last sync into River's objects (the truth for every reader):
        the counts, means, variances and weights of the keys learned, in the order River first inserted them,
        the intercept and the optimizer's step count. Called before anything reads or learns the model outside
        the kernel (:class:`learners.batch.BatchContext`: a release's copy, a judgement, the sentinel's copy, a
        drift alarm's copy, the Python paths, the batch's end)."""
        if not self._pending:
            return
        scaler, lr = self._scaler, self._lr
        opt = lr.optimizer
        if opt.n_iterations != self._iterations - self._pending:
            # Something learned the model while the kernel held its state: a missed sync. Loud, not silent.
            raise RuntimeError(
                "kernel state out of step with River's: the model was learned outside the kernel"
            )
        order = self._order
        keys = list(order)
        cols = np.fromiter(order.values(), np.intp, len(keys))
        S = self.S
        dict.update(scaler.counts, zip(keys, self.C[cols].tolist(), strict=True))
        dict.update(scaler.means, zip(keys, S[_MEAN, cols].tolist(), strict=True))
        dict.update(scaler.vars, zip(keys, S[_VAR, cols].tolist(), strict=True))
        lr._weights.update(dict(zip(keys, S[_W, cols].tolist(), strict=True)))
        lr.intercept = float(self.P[_INTERCEPT])
        opt.n_iterations += self._pending
        self._pending = 0
        self._order = {}
        self._epoch += 1
        self._n_vars = len(scaler.vars)


def dict_row(xc: dict[str, float]) -> tuple[np.ndarray, int, tuple[str, ...]]:
    """A cleaned dict (float values) as a one-row block ``(block, 0, names)``."""
    return np.fromiter(xc.values(), np.float64, len(xc)).reshape(1, -1), 0, tuple(xc)


def build(learner: Any) -> KernelLR | None:
    """A :class:`KernelLR` for ``learner`` when the kernels are available and its shape is the fused one."""
    shape = kernel_shape(learner)  # first: a tree's trainer never imports numba
    if shape is None:
        return None
    compiled = kernels()
    if compiled is None:
        return None
    return KernelLR(learner, shape, compiled)


def warm() -> float:
    """Import numba and compile the kernels (or load them from the cache) now; the seconds it took (0.0 without
    the kernels). A worker's first LR batch pays this otherwise (BENCHMARKS.md, session 16); a failed compile
    switches the kernels off in this process."""
    import time

    t0 = time.perf_counter()
    compiled = kernels()
    if compiled is None:
        return 0.0
    global _compiled
    predict, learn = compiled
    try:
        _warm_calls(predict, learn)
    except Exception:  # numba could not compile here: the pure-Python paths, with the same results
        _compiled = None
        return 0.0
    return time.perf_counter() - t0


def _warm_calls(predict: Callable[..., float], learn: Callable[..., float]) -> None:
    S, C, P = np.zeros((4, 1)), np.zeros(1, np.int64), np.array([0.0, 0.01, 0.01, 1e12, 1.0, 1.0, 0.5])
    cols, block = np.zeros(1, np.intp), np.zeros((1, 1))
    predict(S, cols, block, 0, P)
    learn(S, C, cols, block, 0, P, True, np.zeros((4, 1)), np.zeros(1, np.int64), cols, block, 0)


#: The learner kinds whose champion or challenger the kernel may run (a binary ``FeatureScaler | LogisticRegression``).
KERNEL_KINDS = frozenset({"logistic_regression"})
#: The learner kinds whose trees answer by naive Bayes through :mod:`learners.nb_kernel` (an ``auto`` pool's
#: members include a Hoeffding tree).
NB_KERNEL_KINDS = frozenset({"hoeffding_tree", "auto"})


def warm_for(*specs: Any) -> float:
    """:func:`warm` when one of the learner specs (``LearnerSpec``: the model's learner, its challenger) is of a
    kind the kernel runs, and :func:`learners.nb_kernel.warm` when one is a tree kind (the tree's compiled naive
    Bayes, used only once warmed), else nothing (0.0); and in every case the loss detectors' compiled pass
    (:func:`learners.ph_defer.warm`, not counted in the seconds returned). Called at a train worker's start
    (:meth:`streams.train.Trainer.start`) so the first batch does not pay numba's import and the kernels' load
    (~0.3 s CPU, BENCHMARKS.md session 16); a scorer never learns and never calls it."""
    took = 0.0
    if any(spec is not None and spec.name in KERNEL_KINDS for spec in specs):
        took += warm()
    if any(spec is not None and spec.name in NB_KERNEL_KINDS for spec in specs):
        from learners import nb_kernel

        took += nb_kernel.warm()
    from learners import ph_defer

    # The loss detectors' pass (every kind's trainer feeds them in batches) is loaded too, so no batch pays it.
    # Not counted in the seconds returned, the learner kernels': ~7 ms once they have loaded numba, ~0.35 s for a
    # kind with neither kernel (numba's start).
    ph_defer.warm()
    return took
