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


class _Record(threading.local):
    def __init__(self) -> None:
        self.expect: Any = None  # the splitters of the leaf the trainer predicted at and will learn next
        self.cache: dict[Any, Any] | None = None  # that leaf's class -> (weight, terms) cache (frozen_tree)


_RECORD = _Record()
_ORIGINAL: Callable[..., Any] | None = None
_TYPES: tuple[Any, ...] = ()
_MISSING = object()


def expect(splitters: Any, cache: dict[Any, Any]) -> None:
    """The next learn of the leaf whose splitters dict is ``splitters`` puts its learned class's terms into
    ``cache`` (``frozen_tree._leaf_terms``' ``per_class`` of that leaf: class -> (its weight, its terms))."""
    _RECORD.expect = splitters
    _RECORD.cache = cache


def forget() -> None:
    """No learn is expected (a new label: the trainer predicts before it learns)."""
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
        forget()


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
    _TYPES = (HTLeaf._iter_features, GaussianSplitter, Gaussian, Var, Mean)
    _ORIGINAL = HTLeaf.update_splitters
    LeafMajorityClass.update_splitters = fused_update_splitters  # type: ignore[method-assign]
    return True


def uninstall() -> None:
    """River's own ``update_splitters`` again (for timing bare River)."""
    global _ORIGINAL
    if _ORIGINAL is None:
        return
    from river.tree.nodes.htc_nodes import LeafMajorityClass

    if LeafMajorityClass.__dict__.get("update_splitters") is fused_update_splitters:
        del LeafMajorityClass.update_splitters
    _ORIGINAL = None
