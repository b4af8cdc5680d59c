"""River's Hoeffding tree classifier whose adaptive naive Bayes leaves answer by majority class until settled.

Why (issue 13, BENCHMARKS-accuracy.md session 32 "messy-3k s83" and session 33): when River's tree splits, each
new leaf inherits its parent's class counts but starts with fresh attribute observers. River's adaptive leaf
(``LeafNaiveBayesAdaptive``, ``leaf_prediction="nba"``, the default) answers by naive Bayes while naive Bayes has
been right at least as often as the majority class, which holds at 0 >= 0: a leaf born a moment ago answers by
naive Bayes from its first one or two examples. A one-hot column those examples all had at 1 gets a Gaussian of
variance 0, density 0 anywhere else, and the other class wins at 0.9998: the tree answered class 0 on every probe
for one label (and a release served that state). River's ``nb_threshold`` does not help: it is only read by the
plain ``nb`` leaf, and it compares the leaf's weight, inherited counts included.

:class:`SettledLeafNaiveBayesAdaptive` is River's adaptive leaf that also remembers the weight it was born with
(the inherited counts) and answers by majority class until it has seen :data:`SETTLE_WEIGHT` of its own; past
that, River's rule unchanged. It learns exactly as River's leaf (no method of its learning is overridden, so
``learners.tree_learn``'s fused updates and ``learners.frozen_tree``'s memo apply as before). The root leaf is born
with no counts: it too answers by majority class for its first :data:`SETTLE_WEIGHT` of weight.
River's plain naive Bayes leaf (``LeafNaiveBayes``, ``leaf_prediction="nb"``) has the same defect, worse: it answers
by naive Bayes once its weight (inherited counts included) reaches ``nb_threshold``, so a leaf born a moment ago
does at once, and keeps doing so (session 32's probes: 86, 86, 0, 0, 0 ones after labels 800-804; session 35).
:class:`SettledLeafNaiveBayes` is that leaf with the same rule: majority class until :func:`settled`, then River's.
:class:`SettledHoeffdingTreeClassifier` is River's tree that makes such leaves for ``nba`` and ``nb`` (``mc`` gets
River's). ``learners.specs`` builds it for ``hoeffding_tree`` classifiers; ``learners.frozen_tree._answers_naive``
asks the same rule (:func:`settled`), so the fast paths answer as the tree's own ``predict_proba_one``.

Old artifacts and checkpoints hold River's own classes: they load and answer as they did (River's rule), and a
River tree that resumes learning makes River's leaves; a model built from its spec after the upgrade is this one.
"""

from __future__ import annotations

from typing import Any

from river import tree
from river.tree.nodes.htc_nodes import LeafMajorityClass, LeafNaiveBayes, LeafNaiveBayesAdaptive

__all__ = [
    "SETTLE_WEIGHT",
    "SettledHoeffdingTreeClassifier",
    "SettledLeafNaiveBayes",
    "SettledLeafNaiveBayesAdaptive",
    "settled",
]

#: Weight a leaf must see itself (not inherited from its parent) before it may answer by naive Bayes.
SETTLE_WEIGHT = 10.0


def settled(leaf: Any) -> bool:
    """Whether ``leaf`` (a :class:`SettledLeafNaiveBayesAdaptive` or :class:`SettledLeafNaiveBayes`) has seen
    :data:`SETTLE_WEIGHT` of its own."""
    stats = leaf.stats
    own = (sum(stats.values()) if stats else 0) - leaf._born_weight
    return bool(own >= SETTLE_WEIGHT)


class SettledLeafNaiveBayesAdaptive(LeafNaiveBayesAdaptive):
    """River's adaptive naive Bayes leaf that answers by majority class until :func:`settled` (see the module)."""

    def __init__(self, stats: Any, depth: Any, splitter: Any, **kwargs: Any) -> None:
        super().__init__(stats, depth, splitter, **kwargs)
        self._born_weight = sum(self.stats.values()) if self.stats else 0

    def prediction(self, x: Any, *, tree: Any = None) -> Any:
        if settled(self):
            return super().prediction(x, tree=tree)
        return LeafMajorityClass.prediction(self, x, tree=tree)


class SettledLeafNaiveBayes(LeafNaiveBayes):
    """River's plain naive Bayes leaf that answers by majority class until :func:`settled` (see the module)."""

    def __init__(self, stats: Any, depth: Any, splitter: Any, **kwargs: Any) -> None:
        super().__init__(stats, depth, splitter, **kwargs)
        self._born_weight = sum(self.stats.values()) if self.stats else 0

    def prediction(self, x: Any, *, tree: Any = None) -> Any:
        if settled(self):
            return super().prediction(x, tree=tree)
        return LeafMajorityClass.prediction(self, x, tree=tree)


class SettledHoeffdingTreeClassifier(tree.HoeffdingTreeClassifier):
    """River's ``HoeffdingTreeClassifier`` whose ``nba`` leaves are :class:`SettledLeafNaiveBayesAdaptive` and
    ``nb`` leaves :class:`SettledLeafNaiveBayes`."""

    def _new_leaf(self, initial_stats: Any = None, parent: Any = None) -> Any:
        leaf = super()._new_leaf(initial_stats, parent)
        if type(leaf) is LeafNaiveBayesAdaptive:
            return SettledLeafNaiveBayesAdaptive(leaf.stats, leaf.depth, self.splitter)
        if type(leaf) is LeafNaiveBayes:
            return SettledLeafNaiveBayes(leaf.stats, leaf.depth, self.splitter)
        return leaf
