"""A learning Hoeffding tree leaf's splitter update with River's calls inlined, and the learned class's naive Bayes
terms taken from it instead of read again.

Why: per label the trainer's champion tree (1) learns: River's ``HTLeaf.update_splitters`` calls, per feature,
``GaussianSplitter.update``, ``Gaussian.update``, ``Var.update`` and ``Mean.update`` (four Python calls per
feature, 20 features); and (2) at its next prediction on that leaf reads the learned class's 20 Gaussians again
(:func:`learners.frozen_tree._class_terms`: their variance and its logarithm, ~4.5 us; BENCHMARKS.md session 18).
:func:`fused_update_splitters` runs River's statements of those four methods in the same order on the same
objects (so the model and its pickle are River's, bit for bit), and, for the leaf the trainer just predicted
(:func:`expect`), puts the learned class's terms, as ``_class_terms`` would compute them from the values it has just
written, into that leaf's terms cache with the class's new weight: the next prediction there takes them while the
class's weight is still that one (``frozen_tree._leaf_terms``' own rule: a class's Gaussians change only when it
learns, and its weight moves then).

Anything unusual goes to River's own code, per feature (a new feature's splitter, a splitter or estimator of
another type, a class seen for the first time at this splitter) or per call (a leaf that iterates its features
its own way); the terms are then not kept. Installed with the naive Bayes memo
(:func:`learners.frozen_tree._install_memo`) on ``LeafMajorityClass`` (River's classifier leaves: majority class
and both naive Bayes leaves); :func:`uninstall` puts River's method back (``bench.trainer_split``'s bare River).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from typing import Any

import numpy as np

from learners import nb_kernel as nb
from learners import tree_split


class _Record(threading.local):
    def __init__(self) -> None:
        self.expect: Any = None  # the splitters of the leaf the trainer predicted at and will learn next
        self.cache: dict[Any, Any] | None = None  # that leaf's class -> (weight, terms) cache (frozen_tree)
        # id(splitters) -> the mirror that answered a prediction at that leaf, for the learn that follows: several
        # (the champion and a challenger tree each predict, then each learns)
        self.mirrors: dict[int, LeafMirror] = {}


_RECORD = _Record()
_ORIGINAL: Callable[..., Any] | None = None
_TYPES: tuple[Any, ...] = ()
_MISSING = object()


def expect(splitters: Any, cache: dict[Any, Any]) -> None:
    """The next learn of the leaf whose splitters dict is ``splitters`` puts its learned class's terms into
    ``cache`` (``frozen_tree._leaf_terms``' ``per_class`` of that leaf: class -> (its weight, its terms))."""
    _RECORD.expect = splitters
    _RECORD.cache = cache


def expect_mirror(mirror: LeafMirror) -> None:
    """The next learn of ``mirror``'s leaf goes through the mirror's compiled update (:meth:`LeafMirror.learn`):
    the mirror was current when the leaf answered the prediction."""
    _RECORD.mirrors[id(mirror.splitters)] = mirror


def forget() -> None:
    """No learn is expected (a new label: the trainer predicts before it learns)."""
    _RECORD.expect = None
    _RECORD.cache = None
    if _RECORD.mirrors:
        _RECORD.mirrors.clear()


def _forget_terms(splitters: Any) -> None:
    """The learn of ``splitters``' leaf is done: no terms are kept for it (the other leaves' records stay)."""
    if _RECORD.expect is splitters:
        _RECORD.expect = None
        _RECORD.cache = None


def fused_update_splitters(self: Any, x: Any, y: Any, w: Any, nominal_attributes: Any) -> None:
    """``HTLeaf.update_splitters`` with ``GaussianSplitter.update``, ``Gaussian.update``, ``Var.update`` and
    ``Mean.update`` inlined: River's statements, in River's order."""
    original = _ORIGINAL
    assert original is not None  # installed only with it
    iter_features, splitter_type, gaussian_type, var_type, mean_type = _TYPES
    if type(self)._iter_features is not iter_features:
        original(self, x, y, w, nominal_attributes)
        return
    splitters = self.splitters
    if _MIRRORS and (held := _MIRRORS.get(id(splitters))) is not None and held.splitters is splitters:
        expected = _RECORD.mirrors.pop(id(splitters), None)
        if expected is held and held.learn(self, x, y, w):
            _forget_terms(splitters)
            return
        # A learn the mirror does not model, or one the trainer did not predict first (another caller): River's
        # objects get what the mirror learned, River's statements below change the leaf, the mirror reads it again.
        held.flush()
        held.stale = True
    disabled = self._disabled_attrs
    record = splitters is _RECORD.expect
    terms: list[tuple[Any, float, float, float]] = []
    append, log, missing = terms.append, math.log, _MISSING
    for att_id, att_val in x.items():
        if att_id in disabled:
            record = False
            continue
        splitter = splitters.get(att_id)
        if splitter is None:
            record = False
            original(self, {att_id: att_val}, y, w, nominal_attributes)  # River creates the splitter
            continue
        if type(splitter) is not splitter_type or att_val is None:
            record = False
            splitter.update(att_val, y, w)
            continue
        dist = splitter._att_dist_per_class.get(y)
        mins, maxs = splitter._min_per_class, splitter._max_per_class
        lo, hi = mins.get(y, missing), maxs.get(y, missing)
        if type(dist) is not gaussian_type or lo is missing or hi is missing:
            record = False
            splitter.update(att_val, y, w)  # a new class here (or an odd state): River's own update
            continue
        var = dist._var
        mean = var.mean
        if type(var) is not var_type or type(mean) is not mean_type:
            record = False
            splitter.update(att_val, y, w)
            continue
        # GaussianSplitter.update (the two bounds are different dicts: reading both first changes nothing)
        if att_val < lo:
            mins[y] = att_val
        if att_val > hi:
            maxs[y] = att_val
        # Gaussian.update -> Var.update -> Mean.update, their augmented assignments spelled out on locals:
        # mean.n += w; mean._mean += (w / mean.n) * (x - mean._mean); var._S += w * (x - old) * (x - new)
        m = mean._mean
        n = mean.n + w
        mean.n = n
        m_new = m + (w / n) * (att_val - m)
        mean._mean = m_new
        S = var._S + w * (att_val - m) * (att_val - m_new)
        var._S = S
        if record:  # frozen_tree._class_terms on the values just written
            ddof = var.ddof
            if n > ddof:
                variance = S / (n - ddof)
                if variance > 0.0:
                    append((att_id, m_new, -2.0 * variance, 0.5 * log(variance)))
    if (
        splitters is _RECORD.expect
    ):  # (another tree learning meanwhile, a challenger, leaves the record alone)
        cache = _RECORD.cache
        # The terms are the class's in the splitters' order only if x visited every splitter in that order.
        if record and cache is not None and len(x) == len(splitters) and list(x) == list(splitters):
            cache[y] = (self.stats.get(y), terms)  # else the cache's old weight for y no longer matches: read
        _forget_terms(splitters)


def install() -> bool:
    """Route River's classifier leaves' ``update_splitters`` through :func:`fused_update_splitters` (once per
    process); False, changing nothing, if River's classes do not look as expected."""
    global _ORIGINAL, _TYPES
    if _ORIGINAL is not None:
        return True
    from river.proba import Gaussian
    from river.stats import Mean, Var
    from river.tree.nodes.htc_nodes import LeafMajorityClass
    from river.tree.nodes.leaf import HTLeaf
    from river.tree.splitter import GaussianSplitter

    if "update_splitters" in LeafMajorityClass.__dict__ or LeafMajorityClass.update_splitters is not (
        HTLeaf.update_splitters
    ):
        return False
    if (
        "best_split_suggestions" not in LeafMajorityClass.__dict__
        or "__getstate__" in LeafMajorityClass.__dict__
        or LeafMajorityClass.__getstate__ is not object.__getstate__
    ):
        return False
    global _ORIGINAL_SUGGEST
    _TYPES = (HTLeaf._iter_features, GaussianSplitter, Gaussian, Var, Mean)
    _ORIGINAL = HTLeaf.update_splitters
    _ORIGINAL_SUGGEST = LeafMajorityClass.best_split_suggestions
    LeafMajorityClass.update_splitters = fused_update_splitters  # type: ignore[method-assign]
    # The leaves' mirrors (below) are flushed before a split attempt or a copy reads the leaf.
    LeafMajorityClass.best_split_suggestions = _flushed_best_split_suggestions  # type: ignore[method-assign]
    LeafMajorityClass.__getstate__ = _flushed_getstate  # type: ignore[method-assign]
    from river.tree import HoeffdingTreeClassifier

    global _ORIGINAL_ATTEMPT
    if "_attempt_to_split" in HoeffdingTreeClassifier.__dict__:  # (the split leaves' mirrors dropped)
        _ORIGINAL_ATTEMPT = HoeffdingTreeClassifier._attempt_to_split
        HoeffdingTreeClassifier._attempt_to_split = _attempt_dropping_mirror  # type: ignore[method-assign]
    return True


def uninstall() -> None:
    """River's own ``update_splitters`` again (for timing bare River)."""
    global _ORIGINAL, _ORIGINAL_SUGGEST
    flush_all()  # River's objects as the mirrors learned them; River's own update would not mark them stale
    _MIRRORS.clear()
    if _ORIGINAL is None:
        return
    from river.tree.nodes.htc_nodes import LeafMajorityClass

    if LeafMajorityClass.__dict__.get("update_splitters") is fused_update_splitters:
        del LeafMajorityClass.update_splitters
    if LeafMajorityClass.__dict__.get("__getstate__") is _flushed_getstate:
        del LeafMajorityClass.__getstate__
    if LeafMajorityClass.__dict__.get("best_split_suggestions") is _flushed_best_split_suggestions:
        LeafMajorityClass.best_split_suggestions = _ORIGINAL_SUGGEST  # type: ignore[method-assign,assignment]
    from river.tree import HoeffdingTreeClassifier

    global _ORIGINAL_ATTEMPT
    if HoeffdingTreeClassifier.__dict__.get("_attempt_to_split") is _attempt_dropping_mirror:
        HoeffdingTreeClassifier._attempt_to_split = _ORIGINAL_ATTEMPT  # type: ignore[method-assign,assignment]
    _ORIGINAL = _ORIGINAL_SUGGEST = _ORIGINAL_ATTEMPT = None


# -- a learning leaf's Gaussians in arrays (session 20) ------------------------------------------------------------
# Why: the fused update above still runs ~15 Python statements per feature of the class learned (20 features), and
# the champion's naive Bayes answer at the leaf 40 Python terms: ~13 + ~5 us of the trainer's ~88 per tree label in
# process, most of it cache misses on ~120 small River objects per label (BENCHMARKS.md session 20). A LeafMirror
# holds one learning leaf's Gaussians, bounds and naive Bayes terms in one float array (``learners.nb_kernel``'s
# ``G`` layout): the champion's prediction at the leaf is computed there (``nb_kernel._mirror_answer_py``) and its
# learn is River's statements in River's order over the arrays (``nb_kernel._mirror_learn_py``).
#
# What it learns is written into River's objects (``Mean.n``, ``Mean._mean``, ``Var._S`` per feature of each class
# learned, a bound where it moved) by :meth:`LeafMirror.flush`, before anything else reads them: River's naive
# Bayes (the memo's miss, ``frozen_tree._memo_naive_bayes``), a split attempt (``best_split_suggestions``, routed
# here), a copy or a pickle of the leaf (its ``__getstate__``, routed here: the trainer's copies and checkpoints are
# pickles), the Python path's reads (``frozen_tree._leaf_terms``), and River's own statements on the leaf
# (:func:`fused_update_splitters`, which flushes and marks the mirror stale). Writing back after every label cost
# ~6 us per label in the train worker's loop; a leaf is read about every hundred labels.
#
# A mirror is used only while it is the leaf's: its stats and splitters the same dicts, no attribute disabled, the
# class weights unchanged since it last learned (any learn of the leaf moves them), not stale, and registered in
# :data:`_MIRRORS` (the hooks find a mirror there by its splitters). Anything it does not model (a splitter that is
# not Gaussian, a value that is not a float, a class without a Gaussian at some splitter, a weight that is not a
# float above 0, features other than the splitters in their order) goes to the Python path, which is River's.
# The kernels hold the interpreter lock (no ``nogil``): a flush from another thread never meets a learn half done.

_MIRRORS: dict[
    int, LeafMirror
] = {}  # id(splitters) -> its mirror (the mirror holds the splitters: ids stay unique)
_MIRRORS_MAX = (
    512  # a tree's learning leaves are dozens: past this all are flushed and the registry starts again
)


class LeafMirror:
    """One learning leaf's Gaussians as arrays (see above). Build with :func:`mirror_of`."""

    __slots__ = (
        "G",
        "W",
        "atts",
        "bounds",
        "cidx",
        "classes",
        "dirty",
        "leaf",
        "maxs",
        "means",
        "mins",
        "n_classes",
        "out",
        "pending",
        "split_counts",
        "split_order",
        "splitters",
        "stale",
        "stats",
        "vars",
        "weights",
        "x",
    )

    def __init__(self, leaf: Any) -> None:
        splitter_type = _TYPES[1]
        self.leaf, self.splitters, self.stats = leaf, leaf.splitters, leaf.stats
        splitters, stats = self.splitters, self.stats
        self.atts = tuple(splitters)
        self.classes = list(stats)
        self.cidx = {c: i for i, c in enumerate(self.classes)}
        self.n_classes = C = len(self.classes)
        K = len(self.atts)
        weights = tuple(stats.values())
        if not C or not K or leaf._disabled_attrs or any(type(v) is not float for v in weights):
            raise _Unsupported
        self.weights = weights
        self.W = np.array(weights, dtype=np.float64)
        G = self.G = np.zeros((nb.FIELDS, C, K))
        self.means: list[list[Any]] = [[None] * K for _ in range(C)]
        self.vars: list[list[Any]] = [[None] * K for _ in range(C)]
        self.mins: list[Any] = []
        self.maxs: list[Any] = []
        # Per splitter, its classes in its own order (its dict's: a split attempt's branches are filled in it), as
        # indices into the class axis (learners.tree_split). A class gains a Gaussian only through River's path,
        # after which the mirror is not current.
        self.split_order = np.zeros((K, C), dtype=np.intp)
        self.split_counts = np.zeros(K, dtype=np.intp)
        log = math.log
        for k, splitter in enumerate(splitters.values()):
            if type(splitter) is not splitter_type:
                raise _Unsupported
            dists, mins, maxs = splitter._att_dist_per_class, splitter._min_per_class, splitter._max_per_class
            for j, cls in enumerate(dists):
                if cls not in self.cidx:
                    raise _Unsupported
                self.split_order[k, j] = self.cidx[cls]
            self.split_counts[k] = len(dists)
            self.mins.append(mins)
            self.maxs.append(maxs)
            for c, cls in enumerate(self.classes):
                dist = dists.get(cls)
                if dist is None:
                    continue  # no Gaussian: no term (River's -inf), and a learn of the class is River's
                lo, hi = mins.get(cls), maxs.get(cls)
                exact = tree_split.exact_gaussian(dist, lo, hi)
                if exact is None:
                    raise _Unsupported
                mean, var = exact
                self.means[c][k], self.vars[c][k] = mean, var
                n, m, S, ddof = mean.n, mean._mean, var._S, var.ddof
                G[nb._N, c, k], G[nb._M, c, k], G[nb._S, c, k], G[nb._DDOF, c, k] = n, m, S, ddof
                G[nb._LO, c, k], G[nb._HI, c, k], G[nb._HAS, c, k] = lo, hi, 1.0
                if n > ddof:  # frozen_tree._class_terms
                    variance = S / (n - ddof)
                    if variance > 0.0:
                        G[nb._VALID, c, k] = 1.0
                        G[nb._MU, c, k], G[nb._N2V, c, k] = m, -2.0 * variance
                        G[nb._HLV, c, k] = 0.5 * log(variance)
        self.bounds = np.zeros(
            (C, K), dtype=np.int8
        )  # per class and splitter: 1 a new minimum, 2 a new maximum
        self.dirty = [False] * C  # per class: learned since the last flush
        self.pending = False
        self.out = np.zeros(C)
        self.stale = False
        self.x: Any = None  # the features of the last row read (row), with the row and whether all are floats

    def current(self, leaf: Any) -> bool:
        """Whether this mirror is still ``leaf``'s state (see the section's comment)."""
        stats = leaf.stats
        return (
            not self.stale
            and leaf.splitters is self.splitters
            and stats is self.stats
            and not leaf._disabled_attrs
            and tuple(stats.values()) == self.weights
            and _MIRRORS.get(id(self.splitters)) is self
        )

    def row(self, x: dict[str, Any]) -> Any:
        """``x``'s values in the splitters' order as float64 (the kernel's row), or None: other features. Kept
        with ``x`` for the learn of the same label (:meth:`learn`: the trainer predicts, then learns, the same
        dict, as the naive Bayes memo assumes)."""
        if tuple(x) != self.atts:
            self.x = None
            return None
        values = list(x.values())
        try:
            row = np.array(values, dtype=np.float64)
        except (TypeError, ValueError, OverflowError):
            self.x = None
            return None
        floats = True
        for v in values:
            if type(v) is not float:
                floats = False
                break
        self.x = (x, row, floats)
        return row

    def answer(self, answer: Callable[..., int], row: Any) -> dict[Any, float] | None:
        """``frozen_tree._naive_bayes(frozen_tree._leaf_terms(leaf), x)`` (without ``nb_kernel.NORMALISES``: the
        log likelihoods, for the caller to normalise), or None: the Python path answers."""
        out = self.out
        if answer(row, self.G, self.W, self.n_classes, nb.PARAMS, out) != nb.OK:
            return None
        return dict(zip(self.classes, out.tolist(), strict=True))

    def learn(self, leaf: Any, x: Any, y: Any, w: Any) -> bool:
        """``fused_update_splitters(leaf, x, y, w, ...)`` on the arrays (River's objects get it at :meth:`flush`);
        False, changing nothing, when River's statements must run instead (the caller flushes and marks the mirror
        stale). ``x`` must be the dict :meth:`row` read last, which the trainer has not changed since."""
        kernels = nb.mirror_ready()
        c = self.cidx.get(y)
        held = self.x
        if (
            kernels is None
            or c is None
            or held is None
            or held[0] is not x
            or not held[2]
            or type(w) is not float
            or not w > 0.0
            or leaf._disabled_attrs
            or type(leaf)._iter_features is not _TYPES[0]
            or leaf.splitters is not self.splitters
        ):
            return False
        if kernels[1](held[1], c, w, self.G, self.W, self.bounds) < 0:
            return False
        self.dirty[c] = self.pending = True
        stats = self.stats
        self.weights = tuple(stats.values())
        if stats.get(y) != self.W[c]:  # update_stats added w to the class's weight as the kernel did
            self.flush()
            self.stale = True
        return True

    def flush(self) -> None:
        """Write what the arrays learned into River's objects: per class learned since the last flush, per feature,
        ``Mean.n``, ``Mean._mean``, ``Var._S``, and the bounds that moved."""
        if not self.pending:
            return
        G = self.G
        for c, dirty in enumerate(self.dirty):
            if not dirty:
                continue
            for mean, var, n, m, S in zip(
                self.means[c],
                self.vars[c],
                G[nb._N, c].tolist(),
                G[nb._M, c].tolist(),
                G[nb._S, c].tolist(),
                strict=True,
            ):
                mean.n = n
                mean._mean = m
                var._S = S
            moved = self.bounds[c]
            if moved.any():
                cls = self.classes[c]
                lo, hi = G[nb._LO, c].tolist(), G[nb._HI, c].tolist()
                for k, flag in enumerate(moved.tolist()):
                    if flag & 1:
                        self.mins[k][cls] = lo[k]
                    if flag & 2:
                        self.maxs[k][cls] = hi[k]
                moved[:] = 0
            self.dirty[c] = False
        self.pending = False


class _Unsupported(Exception):
    """A leaf the mirror does not model."""


def flush_splitters(splitters: Any) -> None:
    """River's objects of the leaf whose splitters dict is ``splitters`` as its mirror learned them, if it has one
    (a no-op otherwise): call before reading them."""
    if _MIRRORS and splitters is not None:
        mirror = _MIRRORS.get(id(splitters))
        if mirror is not None and mirror.splitters is splitters:
            mirror.flush()


def flush_all() -> None:
    """Every mirror's learning written into River's objects (:meth:`LeafMirror.flush`)."""
    for mirror in list(_MIRRORS.values()):
        mirror.flush()


def mirror_of(leaf: Any, held: LeafMirror | None) -> LeafMirror | None:
    """``held`` if it is still ``leaf``'s, else a new mirror of ``leaf`` (registered), or None: a leaf the mirror
    does not model, or no compiled kernel (``nb_kernel.mirror_ready``), or the fused update not installed."""
    if held is not None and held.leaf is leaf and held.current(leaf):
        return held
    if _ORIGINAL is None:
        return None
    if nb.mirror_ready() is None:
        return None
    flush_splitters(
        leaf.splitters
    )  # (a mirror that is not current holds nothing: flushed when it stopped being)
    try:
        mirror = LeafMirror(leaf)
    except _Unsupported:
        return None
    if len(_MIRRORS) >= _MIRRORS_MAX:
        flush_all()
        _MIRRORS.clear()
    _MIRRORS[id(mirror.splitters)] = mirror
    return mirror


def _flushed_best_split_suggestions(self: Any, criterion: Any, tree: Any) -> Any:
    """``LeafMajorityClass.best_split_suggestions``, compiled (:func:`learners.tree_split.suggestions`: the same
    suggestions) from the leaf's current mirror's arrays, or from River's objects after the mirror is flushed,
    else River's method after the flush (a split attempt reads every Gaussian and bound)."""
    splitters = self.splitters
    mirror = _MIRRORS.get(id(splitters)) if _MIRRORS and splitters is not None else None
    if mirror is not None and mirror.splitters is not splitters:
        mirror = None
    if COMPILED_SPLITS and splitters is not None:
        kernel = nb.split_ready()
        if mirror is not None and mirror.current(self):
            # The mirror's arrays are the leaf's: River's objects are not read, so not flushed (their next reader
            # flushes them, as after a learn).
            got = tree_split.suggestions(self, criterion, tree, mirror, kernel)
            if got is not None:
                return got
        if mirror is not None:
            mirror.flush()
            mirror = None
        got = tree_split.suggestions(self, criterion, tree, None, kernel)
        if got is not None:
            return got
    if mirror is not None:
        mirror.flush()
    return _ORIGINAL_SUGGEST(self, criterion, tree)  # type: ignore[misc]


# The split attempts compiled (learners.tree_split) when the kernels are on; off: River's (bench.nb_switches).
COMPILED_SPLITS = True


def _flushed_getstate(self: Any) -> Any:
    """``object.__getstate__`` after the leaf's mirror is flushed (a copy or a pickle of the leaf)."""
    flush_splitters(self.__dict__.get("splitters"))
    return object.__getstate__(self)


_ORIGINAL_SUGGEST: Callable[..., Any] | None = None
_ORIGINAL_ATTEMPT: Callable[..., Any] | None = None


def _attempt_dropping_mirror(self: Any, leaf: Any, parent: Any, parent_branch: Any, **kwargs: Any) -> None:
    """``HoeffdingTreeClassifier._attempt_to_split``, then the leaf's mirror leaves the registry if the leaf left
    the tree (split: a branch took its place) or stopped learning (pre-pruned: no splitters). Why: the registry
    held a split leaf's mirror, its Gaussians and the leaf itself, until it filled (512 mirrors)."""
    splitters = leaf.splitters
    _ORIGINAL_ATTEMPT(self, leaf, parent, parent_branch, **kwargs)  # type: ignore[misc]
    if not _MIRRORS or splitters is None:
        return
    mirror = _MIRRORS.get(id(splitters))
    if mirror is None or mirror.splitters is not splitters:
        return
    try:
        here = self._root if parent is None else parent.children[parent_branch]
    except (AttributeError, IndexError, KeyError, TypeError):
        return  # a tree laid out otherwise: the mirror stays (it is dropped when the registry fills)
    if here is not leaf or leaf.splitters is not splitters:
        mirror.flush()  # (nothing reads the leaf any more; its objects stay River's truth all the same)
        del _MIRRORS[id(splitters)]
