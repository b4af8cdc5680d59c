"""A compiled naive Bayes answer for a Hoeffding tree's leaf (numba), used by :mod:`learners.frozen_tree`.

Why: with a leaf's Gaussian terms read once (:func:`learners.frozen_tree._leaf_terms`), what is left of a tree's
naive Bayes answer is 40 Python terms (20 features x 2 classes) and a log-sum-exp: ~5.5 us per answer in Python,
three or four answers per trainer label (the champion's prediction, the served snapshot's or the previous model's,
the sentinel's two copies; BENCHMARKS.md session 18). Here the same arithmetic runs compiled over a float row.

The answers are the Python path's to the bit (tests/test_learners_nb_kernel.py), because each operation is the
one CPython does, in the same order, with no fast-math (no reassociation, no fused multiply-add):

- the square is ``abs(d) ** e`` with ``e = 2.0`` read from the parameters array at run time: a constant exponent
  would be compiled to ``d * d`` (which is not always libm's ``pow``: ~0.08 % of doubles differ by one ulp), a
  run-time one calls libm's ``pow``, which is what CPython's float ``**`` calls, on ``abs(d)`` as CPython does;
- ``exp`` and ``log`` are libm's, as ``math.exp`` and ``math.log`` are;
- the log-sum-exp's ``sum`` adds left to right from 0.0, as CPython 3.11's ``sum`` of floats does. CPython 3.12
  sums floats with compensation, so there (``_NORMALISE`` off) the kernel leaves the log likelihoods for the
  caller to normalise in Python;
- anything CPython would raise on (a square that overflows: ``OverflowError``) or that the Python path hands to
  River (a non-finite difference) is not answered here: the row's status says so and the caller takes the Python
  path, which decides as before.

Used once warmed (:func:`warm`, which the train worker's start calls through
:func:`learners.kernels.warm_for` for a tree): :func:`ready` never compiles, so a scorer loading a release does
not pay the compilation mid-stream. ``DRIFTLINE_NO_JIT=1`` (or numba missing, or failing to compile, or not
warmed): :func:`ready` is None and :mod:`learners.frozen_tree` answers in Python and numpy as before, with the
same results.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable
from typing import Any

import numpy as np

from learners.jit import jit_enabled

# Parameters array (``P``): the exponent 2.0 (as data: see above), 0.5 log(2 pi) as river.proba.gaussian has
# it, and 1.0 when the kernel normalises (CPython's ``sum`` of floats is plain addition before 3.12).
_TWO, _HALF_LOG_TAU, _NORMALISE = range(3)
NORMALISES = sys.version_info < (3, 12)
PARAMS = np.array([2.0, 0.5 * math.log(math.tau), 1.0 if NORMALISES else 0.0])

OK, FALLBACK = 0, 1  # a row's status


def _row_py(
    X: Any, r: int, cols: Any, mu: Any, neg2var: Any, hlv: Any, prior: Any, n_classes: int, P: Any, out: Any
) -> int:
    """One leaf's naive Bayes answer for row ``r`` of ``X``: per class ``c < n_classes`` (the leaf's order), its
    log prior plus, per term ``k`` with ``cols[c, k] >= 0`` (the term's column of ``X``; -1: the feature is not
    in the row, River adds nothing), ``(x - mu) ** 2 / neg2var - half_log_tau - hlv`` when that is above -inf;
    then River's log-sum-exp normalisation (with ``P[_NORMALISE]``) into ``out[:n_classes]``. FALLBACK: a
    non-finite difference or square (the Python path decides), else OK."""
    two = P[_TWO]
    half_log_tau = P[_HALF_LOG_TAU]
    for c in range(n_classes):
        v = prior[c]
        for k in range(cols.shape[1]):
            j = cols[c, k]
            if j < 0:
                continue
            d = X[r, j] - mu[c, k]
            if not math.isfinite(d):
                return FALLBACK
            sq = abs(d) ** two
            if not math.isfinite(sq):
                return FALLBACK  # CPython raises OverflowError here
            log_p = sq / neg2var[c, k] - half_log_tau - hlv[c, k]
            if log_p > -math.inf:
                v += log_p
        out[c] = v
    if P[_NORMALISE] == 0.0:
        return OK
    # frozen_tree._normalise: max (the first kept on a tie, as max()), sum from 0.0 left to right, exp, log
    top = out[0]
    for c in range(1, n_classes):
        if out[c] > top:
            top = out[c]
    total = 0.0
    for c in range(n_classes):
        total += math.exp(out[c] - top)
    lse = top + math.log(total)
    for c in range(n_classes):
        out[c] = math.exp(out[c] - lse)
    return OK


def _rows_py(
    X: Any,
    rows: Any,
    slots: Any,
    cols: Any,
    mu: Any,
    neg2var: Any,
    hlv: Any,
    prior: Any,
    n_classes: Any,
    P: Any,
    out: Any,
    status: Any,
) -> None:
    """:func:`_row_py` for rows ``rows[i]`` of ``X``, each with the leaf (stacked arrays' first index)
    ``slots[i]``, into ``out[i]`` and ``status[i]``."""
    for i in range(rows.shape[0]):
        s = slots[i]
        status[i] = _row(X, rows[i], cols[s], mu[s], neg2var[s], hlv[s], prior[s], n_classes[s], P, out[i])


# -- a learning leaf's Gaussians in arrays (session 20: learners.tree_learn.LeafMirror) ---------------------------
# ``G[field, c, k]``: per class ``c`` of the leaf (its order) and splitter ``k`` (the splitters' order), River's
# Gaussian (``Mean.n``, ``Mean._mean``, ``Var._S``, ``Var.ddof``), the splitter's bounds for the class, and the naive
# Bayes term ``frozen_tree._class_terms`` reads from it (1.0 in ``_VALID`` when there is one: the class has a
# Gaussian at the splitter, ``n > ddof`` and the variance is above 0).
_N, _M, _S, _DDOF, _LO, _HI, _HAS, _VALID, _MU, _N2V, _HLV = range(11)
FIELDS = 11


def _mirror_answer_py(x: Any, G: Any, W: Any, n_classes: int, P: Any, out: Any) -> int:
    """A learning leaf's naive Bayes answer for the row ``x`` (the value of splitter ``k`` at ``x[k]``), as
    ``frozen_tree._naive_bayes(frozen_tree._leaf_terms(leaf), x)``: the log priors from the class weights ``W``
    (the leaf's ``stats`` in its order; ``sum`` from 0 left to right, then ``log(weight / total)``), then
    :func:`_row_py`'s terms and normalisation. FALLBACK: a weight not above 0 (``_leaf_terms`` leaves it to
    River), a non-finite difference or square (the Python path decides)."""
    total = 0.0
    for c in range(n_classes):
        total += W[c]
    for c in range(n_classes):
        if not W[c] > 0.0:
            return FALLBACK
    two = P[_TWO]
    half_log_tau = P[_HALF_LOG_TAU]
    for c in range(n_classes):
        v = math.log(W[c] / total)
        for k in range(G.shape[2]):
            if G[_VALID, c, k] == 0.0:
                continue
            d = x[k] - G[_MU, c, k]
            if not math.isfinite(d):
                return FALLBACK
            sq = abs(d) ** two
            if not math.isfinite(sq):
                return FALLBACK  # CPython raises OverflowError here
            log_p = sq / G[_N2V, c, k] - half_log_tau - G[_HLV, c, k]
            if log_p > -math.inf:
                v += log_p
        out[c] = v
    if P[_NORMALISE] == 0.0:
        return OK
    top = out[0]
    for c in range(1, n_classes):
        if out[c] > top:
            top = out[c]
    total = 0.0
    for c in range(n_classes):
        total += math.exp(out[c] - top)
    lse = top + math.log(total)
    for c in range(n_classes):
        out[c] = math.exp(out[c] - lse)
    return OK


def _mirror_learn_py(x: Any, c: int, w: float, G: Any, W: Any, bounds: Any) -> int:
    """Class ``c`` of a learning leaf learns the row ``x`` with weight ``w``: per splitter ``k``, in River's order,
    ``GaussianSplitter.update`` (the bounds: ``bounds[c, k]`` gains 1 for a new minimum, 2 for a new maximum, kept
    until the caller writes them back), ``Gaussian.update`` -> ``Var.update`` -> ``Mean.update`` (``n += w``;
    ``mean += (w / n) * (x - mean)``; ``S += w * (x - old) * (x - new)``), then the class's naive Bayes term as
    ``frozen_tree._class_terms`` computes it; and the class weight ``W[c] += w`` (``update_stats``). The number of
    bounds moved, or -1 without changing anything: a Gaussian missing for the class, or a count that would be 0
    (CPython raises ZeroDivisionError there: River's own update decides)."""
    K = G.shape[2]
    for k in range(K):
        if G[_HAS, c, k] == 0.0 or G[_N, c, k] + w == 0.0:
            return -1
    moved = 0
    for k in range(K):
        v = x[k]
        if v < G[_LO, c, k]:
            G[_LO, c, k] = v
            bounds[c, k] |= 1
            moved += 1
        if v > G[_HI, c, k]:
            G[_HI, c, k] = v
            bounds[c, k] |= 2
            moved += 1
        m = G[_M, c, k]
        n = G[_N, c, k] + w
        G[_N, c, k] = n
        m_new = m + (w / n) * (v - m)
        G[_M, c, k] = m_new
        S = G[_S, c, k] + w * (v - m) * (v - m_new)
        G[_S, c, k] = S
        ddof = G[_DDOF, c, k]
        G[_VALID, c, k] = 0.0
        if n > ddof:
            variance = S / (n - ddof)
            if variance > 0.0:
                G[_VALID, c, k] = 1.0
                G[_MU, c, k] = m_new
                G[_N2V, c, k] = -2.0 * variance
                G[_HLV, c, k] = 0.5 * math.log(variance)
    W[c] = W[c] + w
    return moved


# The Python function _rows_py calls: itself interpreted, the compiled _row_py once compiled.
_row: Callable[..., int] = _row_py

_compiled: tuple[Callable[..., int], Callable[..., None]] | None = None
_mirror: tuple[Callable[..., int], Callable[..., int]] | None = (
    None  # (answer, learn), compiled with the others
)
_split: Callable[..., int] | None = None  # learners.tree_split's, compiled with the others
_tried = False


def compiled() -> tuple[Callable[..., int], Callable[..., None]] | None:
    """The compiled ``(row, rows)``, or None: not switched on (:func:`learners.jit.jit_enabled`), no numba,
    or a failed compile. Compiled (or loaded from numba's cache) and tried at the first call."""
    global _compiled, _tried
    if not jit_enabled():
        return None
    if not _tried:
        _tried = True
        try:
            _compiled = _compile()
        except Exception:  # no numba, or it cannot compile here: the Python paths, with the same results
            _compiled = None
    return _compiled


def _compile() -> tuple[Callable[..., int], Callable[..., None]]:
    import numba

    global _row, _mirror
    for cache in (True, False):  # cache=True fails without a writable cache location: compiled per process
        try:
            row = numba.njit(cache=cache, nogil=True)(_row_py)
            _row = row  # the rows kernel calls the compiled row (numba resolves the global when it compiles)
            rows = numba.njit(cache=cache, nogil=True)(_rows_py)
            _warm(row, rows)
            # (Not nogil: a mirror's flush from another thread must not meet a learn half done.)
            answer = numba.njit(cache=cache)(_mirror_answer_py)
            learn = numba.njit(cache=cache)(_mirror_learn_py)
            _warm_mirror(answer, learn)
            _mirror = (answer, learn)
            _compile_split(numba, cache)
            return row, rows
        except Exception:
            _row = _row_py
            _mirror = None
            if not cache:
                raise
    raise AssertionError("unreachable")


def _compile_split(numba: Any, cache: bool) -> None:
    """The split attempts' kernel (:mod:`learners.tree_split`), or none: River's own split attempts then (the other
    kernels stay)."""
    global _split
    from learners import tree_split

    for attempt in (cache, False) if cache else (False,):
        try:
            _split = tree_split.compile_kernel(numba, attempt)
            return
        except Exception:
            _split = None


def _warm(row: Callable[..., int], rows: Callable[..., None]) -> None:
    """Compile both for the argument types the callers pass (float64 arrays, intp columns and indices)."""
    X = np.zeros((1, 1))
    cols = np.zeros((1, 1), dtype=np.intp)
    terms = np.zeros((1, 1))
    prior = np.zeros(1)
    out = np.zeros(1)
    row(X, 0, cols, terms, np.full((1, 1), -1.0), terms, prior, 1, PARAMS, out)
    idx = np.zeros(1, dtype=np.intp)
    rows(
        X,
        idx,
        idx,
        cols[None],
        terms[None],
        np.full((1, 1, 1), -1.0),
        terms[None],
        prior[None],
        idx,
        PARAMS,
        out[None],
        np.zeros(1, dtype=np.int8),
    )


def _warm_mirror(answer: Callable[..., int], learn: Callable[..., int]) -> None:
    """Compile both for the argument types :class:`learners.tree_learn.LeafMirror` passes."""
    G = np.zeros((FIELDS, 1, 1))
    W, x, out = np.ones(1), np.zeros(1), np.zeros(1)
    answer(x, G, W, 1, PARAMS, out)
    learn(x, 0, 1.0, G, W, np.zeros((1, 1), dtype=np.int8))


def mirror_ready() -> tuple[Callable[..., int], Callable[..., int]] | None:
    """The compiled ``(answer, learn)`` of a learning leaf's mirror, on the same terms as :func:`ready`."""
    if not _tried or not jit_enabled() or _compiled is None:
        return None
    return _mirror


def split_ready() -> Callable[..., int] | None:
    """The compiled split attempts (:func:`learners.tree_split._suggest_py`), on the same terms as
    :func:`mirror_ready` (the leaves' mirrors on): else River's own split attempts."""
    if mirror_ready() is None:
        return None
    return _split


def ready() -> tuple[Callable[..., int], Callable[..., None]] | None:
    """:func:`compiled` if it has been asked already (:func:`warm`: the train worker's start), else None without
    compiling: a model loaded elsewhere (a scorer's release) never pays numba's import and compilation (~1 s CPU
    the first time on a machine, ~0.3 s from the cache) in the middle of its work."""
    if not _tried or not jit_enabled():
        return None
    return _compiled


def warm() -> float:
    """Compile (or load) the kernels now: the seconds it took, 0.0 without them."""
    import time

    t0 = time.perf_counter()
    if compiled() is None:
        return 0.0
    return time.perf_counter() - t0


class LeafArrays:
    """One leaf's naive Bayes terms (:data:`learners.frozen_tree._Terms`) as the kernel reads them.

    ``atts``: the features the terms read, in first-use order (a row's values are gathered in this order);
    ``classes``: the leaf's classes in its order; per class and term: the column in ``atts``, the mean, -2
    variance, half the log variance (padded with column -1); the log priors.
    """

    __slots__ = ("atts", "classes", "cols", "hlv", "mu", "n", "neg2var", "out", "prior")

    def __init__(self, terms: Any) -> None:
        index: dict[Any, int] = {}
        for _, _, feats in terms:
            for att, *_ in feats:
                index.setdefault(att, len(index))
        self.atts = list(index)
        self.classes = [c for c, _, _ in terms]
        self.n = len(terms)
        width = max((len(feats) for _, _, feats in terms), default=0) or 1
        self.cols = np.full((self.n, width), -1, dtype=np.intp)
        self.mu, self.hlv = np.zeros((self.n, width)), np.zeros((self.n, width))
        self.neg2var = np.full((self.n, width), -1.0)
        self.prior = np.array([p for _, p, _ in terms], dtype=np.float64)
        for c, (_, _, feats) in enumerate(terms):
            for k, (att, m, n2v, h) in enumerate(feats):
                self.cols[c, k] = index[att]
                self.mu[c, k], self.neg2var[c, k], self.hlv[c, k] = m, n2v, h
        self.out = np.zeros(self.n)

    def answer(self, row: Callable[..., int], x: dict[str, float]) -> dict[Any, float] | None:
        """``frozen_tree._naive_bayes(terms, x)`` compiled (without :data:`NORMALISES`: the log likelihoods, for
        the caller to normalise), or None when the Python path must answer (a feature of the terms missing from
        ``x``, a non-finite difference or square)."""
        try:
            values = np.array([x[a] for a in self.atts], dtype=np.float64)[None]
        except (KeyError, TypeError, ValueError, OverflowError):
            return None
        out = self.out
        if row(values, 0, self.cols, self.mu, self.neg2var, self.hlv, self.prior, self.n, PARAMS, out) != OK:
            return None
        return dict(zip(self.classes, out.tolist(), strict=True))
