"""A learning Hoeffding tree leaf's split attempt compiled: River's ``best_split_suggestions`` for Gaussian splitters
and information gain, the same suggestions to the bit.

Why: every ``grace_period`` labels a learning leaf asks each feature's ``GaussianSplitter`` for its best split: per
feature ten candidate thresholds, per candidate each class's Gaussian ``cdf`` (``math.erf``), the two branches'
weights and River's entropy in dicts (``InfoGainSplitCriterion.merit_of_split``). For 20 features and 2 classes
that is ~1.5 ms of Python per attempt, ~7-8 us per label of the trainer's ~85 (BENCHMARKS.md session 20). Here the
candidates and their merits run compiled (:func:`_suggest_py`, numba, from :mod:`learners.nb_kernel`'s compile),
and Python builds what River returns: per feature the winner's ``BranchFactory`` with its merit, threshold and
branch weights (the weights by River's own ``GaussianSplitter._class_dists_from_binary_split``).

Bit for bit, because each operation is the one CPython runs, in River's order, with no fast-math:

- the candidates: the class bounds' minimum and maximum in the splitter's class order,
  ``bin_size = (max - min) / (n_splits + 1.0)``, ``min + bin_size * (i + 1)``, kept when strictly inside;
- ``Gaussian.cdf``: ``sigma = Var.get() ** 0.5`` with the exponent read at run time (libm ``pow``, as CPython's
  float ``**``; a constant would compile to ``sqrt``), 0.0 when ``sigma`` is 0 (River's ``ZeroDivisionError``),
  else ``0.5 * (1.0 + erf(((x - mu) / sigma) / sqrt(2.0)))``; numba's ``math.erf`` and ``math.log2`` call libm's
  ``erf`` and ``log2`` as CPython 3.11's do (tests/test_learners_tree_split.py checks millions of values);
- the branches filled in the splitter's class order (a dict's insertion order), each branch's ``sum`` from 0.0
  left to right (CPython 3.11; from 3.12 ``sum`` of floats is compensated: no kernel there), the entropies and
  ``num_subsets_greater_than_frac`` as River writes them, the first best candidate kept on a tie (``>``).

Anything else takes River's own method: another criterion (Gini, Hellinger), a splitter that is not exactly a
``GaussianSplitter`` or whose ``n_splits`` is not an int, class weights that are not floats, a non-finite count,
mean, ``S`` or bound, a negative variance (River raises there), CPython 3.12+, no compiled kernel
(``nb_kernel.mirror_ready()`` None: ``DRIFTLINE_NO_JIT=1``, numba missing, not warmed). The leaf's arrays come from
its :class:`learners.tree_learn.LeafMirror` when it is current (flushed first, so River's objects agree), else they
are read from River's objects (flushed first). A split attempt from the mirror does not flush it: nothing of River's
Gaussians is read, and what the mirror learned reaches them at the next read point (as for a learn).
"""

from __future__ import annotations

import math
import sys
from typing import Any

import numpy as np

# The fields of learners.nb_kernel's ``G`` this kernel reads, its first six (a table read from River's objects holds
# only those; tests/test_learners_tree_split.py checks they agree). Not imported: nb_kernel compiles this module.
_N, _M, _S, _DDOF, _LO, _HI = range(6)
OK, FALLBACK = 0, 1
# CPython's ``sum`` of floats is plain left-to-right addition before 3.12 (then compensated: River's path there).
SUMS_PLAINLY = sys.version_info < (3, 12)


def _entropy_py(values: Any, count: int) -> float:
    """``InfoGainSplitCriterion._compute_entropy_dict`` of a dict whose values are ``values[:count]`` in order."""
    entropy = 0.0
    dis_sums = 0.0
    for i in range(count):
        d = values[i]
        if d > 0.0:
            entropy -= d * math.log2(d)
            dis_sums += d
    return (entropy + dis_sums * math.log2(dis_sums)) / dis_sums if dis_sums > 0.0 else 0.0


def _suggest_py(
    G: Any,
    order: Any,
    counts: Any,
    n_splits: Any,
    W: Any,
    n_weights: int,
    min_frac: float,
    half: Any,
    merits: Any,
    values: Any,
    found: Any,
    sides: Any,
    left: Any,
    right: Any,
) -> int:
    """Per splitter ``k``: ``GaussianSplitter.best_evaluated_split_suggestion`` with ``InfoGainSplitCriterion``;
    ``found[k]`` 1 and its merit and threshold in ``merits[k]``, ``values[k]``, and its branches per class ``j`` of
    the splitter's order in ``sides[k, j]`` (1: the left branch only, 2: the right only, 3: both) with the weights
    ``left[k, j]``, ``right[k, j]``; or 0: no candidate beat -inf (River's ``BranchFactory()``). The splitter's
    classes in its order are ``order[k, :counts[k]]`` (indices into ``G``'s class axis); ``W[:n_weights]`` the
    leaf's class weights in ``stats`` order (the split's ``pre_split_dist``); ``half[0]`` is 0.5. FALLBACK,
    nothing decided: an input River's path must see (a non-finite statistic, a negative variance)."""
    K = order.shape[0]
    width = order.shape[1]
    for k in range(K):
        for j in range(counts[k]):
            c = order[k, j]
            for f in range(6):
                if not math.isfinite(G[f, c, k]):
                    return FALLBACK
            n = G[_N, c, k]
            if n > G[_DDOF, c, k] and G[_S, c, k] / (n - G[_DDOF, c, k]) < 0.0:
                return FALLBACK  # a negative variance: ** 0.5 is complex in CPython and River raises
    for c in range(n_weights):
        if not math.isfinite(W[c]):
            return FALLBACK
    pre_entropy = _entropy(W, n_weights)
    lhs = np.empty(width)
    rhs = np.empty(width)
    side = np.zeros(width, dtype=np.int8)
    at_l = np.zeros(width)
    at_r = np.zeros(width)
    p = half[0]
    root2 = math.sqrt(2.0)
    for k in range(K):
        found[k] = 0
        merits[k] = -math.inf
        values[k] = 0.0
        nk = counts[k]
        # GaussianSplitter._split_point_suggestions
        min_value = math.inf
        max_value = -math.inf
        for j in range(nk):
            c = order[k, j]
            if G[_LO, c, k] < min_value:
                min_value = G[_LO, c, k]
            if G[_HI, c, k] > max_value:
                max_value = G[_HI, c, k]
        if not min_value < math.inf:
            continue
        bin_size = max_value - min_value
        bin_size /= n_splits[k] + 1.0
        best = -math.inf
        for i in range(n_splits[k]):
            split_value = min_value + (bin_size * (i + 1))
            if not (min_value < split_value < max_value):
                continue
            # GaussianSplitter._class_dists_from_binary_split, the branches in the splitter's class order
            nl = 0
            nr = 0
            for j in range(nk):
                c = order[k, j]
                n = G[_N, c, k]
                if split_value < G[_LO, c, k]:
                    rhs[nr] = n
                    nr += 1
                    side[j] = 2
                    at_r[j] = n
                elif split_value >= G[_HI, c, k]:
                    lhs[nl] = n
                    nl += 1
                    side[j] = 1
                    at_l[j] = n
                else:
                    # Gaussian.cdf: norm_cdf((x - mu) / sigma), 0.0 on ZeroDivisionError
                    ddof = G[_DDOF, c, k]
                    variance = G[_S, c, k] / (n - ddof) if n > ddof else 0.0
                    sigma = variance**p
                    if sigma == 0.0:
                        cdf = 0.0
                    else:
                        cdf = 0.5 * (1.0 + math.erf(((split_value - G[_M, c, k]) / sigma) / root2))
                    weight = cdf * n
                    lhs[nl] = weight
                    nl += 1
                    rhs[nr] = n - weight
                    nr += 1
                    side[j] = 3
                    at_l[j] = weight
                    at_r[j] = n - weight
            # InfoGainSplitCriterion.merit_of_split: num_subsets_greater_than_frac, then the entropies
            sum_l = 0.0
            for j in range(nl):
                sum_l += lhs[j]
            sum_r = 0.0
            for j in range(nr):
                sum_r += rhs[j]
            total = 0.0
            total += sum_l
            total += sum_r
            greater = 0
            if total > 0:
                if sum_l / total > min_frac:
                    greater += 1
                if sum_r / total > min_frac:
                    greater += 1
            if greater < 2:
                merit = -math.inf
            else:
                post = 0.0
                post += sum_l * _entropy(lhs, nl)
                post += sum_r * _entropy(rhs, nr)
                merit = pre_entropy - post / total
            if merit > best:
                best = merit
                found[k] = 1
                merits[k] = merit
                values[k] = split_value
                for j in range(nk):
                    sides[k, j] = side[j]
                    left[k, j] = at_l[j]
                    right[k, j] = at_r[j]
    return OK


# The Python function _suggest_py calls: itself interpreted, the compiled _entropy_py once compiled.
_entropy: Any = _entropy_py


def compile_kernel(numba: Any, cache: bool) -> Any:
    """The compiled :func:`_suggest_py` (its helper first: numba resolves the global when it compiles), warmed for
    the argument types :func:`suggestions` passes. Called by ``nb_kernel``'s compile."""
    global _entropy
    entropy = numba.njit(cache=cache)(_entropy_py)
    _entropy = entropy
    try:
        suggest = numba.njit(cache=cache)(_suggest_py)
        G = np.zeros((6, 1, 1))
        one = np.ones(1, dtype=np.intp)
        table = np.zeros((1, 1))
        suggest(
            G, np.zeros((1, 1), dtype=np.intp), one, one, np.ones(1), 1, 0.01, _HALF, np.zeros(1), np.zeros(1),
            np.zeros(1, dtype=np.int8), np.zeros((1, 1), dtype=np.int8), table, table.copy(),
        )  # fmt: skip
    except Exception:
        _entropy = _entropy_py
        raise
    return suggest


_HALF = np.array([0.5])  # the exponent of sigma, as data (see the module's docstring)


def suggestions(leaf: Any, criterion: Any, tree: Any, mirror: Any, kernel: Any) -> list[Any] | None:
    """``LeafMajorityClass.best_split_suggestions(leaf, criterion, tree)`` with the candidates compiled by
    ``kernel`` (``nb_kernel.split_ready()``: None, River's), or None (nothing done): River's own method must
    answer. ``mirror``: the leaf's current :class:`learners.tree_learn.LeafMirror` (its arrays are read, not River's
    objects, which need not be flushed), or None (River's objects are read: flushed)."""
    if kernel is None or not SUMS_PLAINLY:
        return None
    from river.tree.split_criterion import InfoGainSplitCriterion
    from river.tree.splitter import GaussianSplitter
    from river.tree.utils import BranchFactory

    if type(criterion) is not InfoGainSplitCriterion or type(criterion.min_branch_fraction) is not float:
        return None
    plain = _PLAIN.get(type(leaf))
    if plain is None:
        plain = _PLAIN[type(leaf)] = _rivers_two_steps(type(leaf))
    if not plain:
        return None
    stats = leaf.stats
    weights = list(stats.values())
    if not weights or any(type(v) is not float for v in weights):
        return None
    # LeafMajorityClass.best_split_suggestions
    maj_class = max(weights)
    if maj_class and maj_class / leaf.total_weight > tree.max_share_to_split:
        return [BranchFactory()]
    splitters = leaf.splitters
    K = len(splitters)
    n_splits = np.empty(K, dtype=np.intp)
    counts = np.empty(K, dtype=np.intp)
    for k, splitter in enumerate(splitters.values()):
        if type(splitter) is not GaussianSplitter or type(splitter.n_splits) is not int:
            return None
        n_splits[k] = splitter.n_splits
        counts[k] = len(splitter._att_dist_per_class)
    if mirror is not None:
        if not (counts == mirror.split_counts).all():
            return None  # (the caller has not flushed: River's objects are not read here)
        G, order = mirror.G, mirror.split_order
    else:
        read = _read(splitters, int(counts.max()) if K else 0)
        if read is None:
            return None
        G, order = read
    W = np.array(weights)
    merits, values, found = np.empty(K), np.empty(K), np.zeros(K, dtype=np.int8)
    width = order.shape[1]
    sides, left, right = np.zeros((K, width), dtype=np.int8), np.empty((K, width)), np.empty((K, width))
    if kernel(G, order, counts, n_splits, W, len(weights), criterion.min_branch_fraction, _HALF, merits,
              values, found, sides, left, right) != OK:  # fmt: skip
        return None
    # HTLeaf.best_split_suggestions: the null split first (pre-pruning), then each feature's best, its branches
    # as GaussianSplitter._class_dists_from_binary_split fills them (the splitter's class order, the same values)
    best = [BranchFactory()] if tree.merit_preprune else []
    for (att_id, splitter), took, merit, value, at, lw, rw in zip(
        splitters.items(),
        found.tolist(),
        merits.tolist(),
        values.tolist(),
        sides.tolist(),
        left.tolist(),
        right.tolist(),
        strict=True,
    ):
        if not took:
            best.append(BranchFactory())
            continue
        lhs: dict[Any, float] = {}
        rhs: dict[Any, float] = {}
        for cls, where, lv, rv in zip(splitter._att_dist_per_class, at, lw, rw, strict=False):
            if where & 1:
                lhs[cls] = lv
            if where & 2:
                rhs[cls] = rv
        best.append(BranchFactory(merit, att_id, value, [lhs, rhs]))
    return best


# leaf type -> whether its split attempt is LeafMajorityClass's then HTLeaf's (nothing between them in its MRO)
_PLAIN: dict[type, bool] = {}


def _rivers_two_steps(leaf_type: type) -> bool:
    """Whether ``leaf_type``'s ``best_split_suggestions`` is ``LeafMajorityClass``'s, whose ``super()`` call reaches
    ``HTLeaf``'s: what :func:`suggestions` computes (River's ARF and adaptive trees' leaves are; a class between
    the two in the MRO with its own method would be skipped: River's path then)."""
    from river.tree.nodes.htc_nodes import LeafMajorityClass
    from river.tree.nodes.leaf import HTLeaf

    mro = leaf_type.__mro__
    if LeafMajorityClass not in mro or HTLeaf not in mro:
        return False
    owners = [c for c in mro if "best_split_suggestions" in c.__dict__]
    return owners[:2] == [LeafMajorityClass, HTLeaf]


def exact_gaussian(dist: Any, lo: Any, hi: Any) -> tuple[Any, Any] | None:
    """``dist``'s running Mean and Var if it, they, their statistics and the class's bounds ``lo``/``hi`` are the
    exact types the kernels read (River's Gaussian, floats, an int ``ddof``), else None (River's path)."""
    from river.proba import Gaussian
    from river.stats import Mean, Var

    if type(dist) is not Gaussian:
        return None
    var = dist._var
    mean = var.mean
    if (
        type(var) is not Var
        or type(mean) is not Mean
        or type(mean.n) is not float
        or type(mean._mean) is not float
        or type(var._S) is not float
        or type(var.ddof) is not int
        or type(lo) is not float
        or type(hi) is not float
    ):
        return None
    return mean, var


def _read(splitters: Any, width: int) -> tuple[Any, Any] | None:
    """The splitters' Gaussians and bounds as the kernel reads them (``G[field, j, k]`` with ``j`` the class's place
    in splitter ``k``'s order), or None: a statistic that is not a float, another Gaussian type."""
    K = len(splitters)
    G = np.zeros((6, max(width, 1), K))
    order = np.zeros((K, max(width, 1)), dtype=np.intp)
    for k, splitter in enumerate(splitters.values()):
        mins, maxs = splitter._min_per_class, splitter._max_per_class
        for j, (cls, dist) in enumerate(splitter._att_dist_per_class.items()):
            lo, hi = mins.get(cls), maxs.get(cls)
            exact = exact_gaussian(dist, lo, hi)
            if exact is None:
                return None
            mean, var = exact
            G[:, j, k] = (mean.n, mean._mean, var._S, var.ddof, lo, hi)
            order[k, j] = j
    return G, order
