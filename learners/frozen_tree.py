"""Predictions of a frozen Hoeffding tree classifier with each leaf's naive Bayes terms computed once.

Why: a Hoeffding tree's leaf answers with naive Bayes (``leaf_prediction="nba"``, River's default), and River
recomputes every Gaussian's variance, square root and logarithm for every feature, class and prediction: about
nine tenths of a tree's prediction time. The trainer's frozen models (probation's previous snapshot, the served
one when an example carries no current answer) never learn, so those numbers are fixed per leaf: this module
reads them once per leaf and then does River's own arithmetic on them, in River's order
(``river.tree.utils.do_naive_bayes_prediction``, ``proba.Gaussian.log_pdf``), so the answers are River's.

Only a plain ``HoeffdingTreeClassifier`` whose leaves hold Gaussian splitters is handled; anything else (another
tree, a nominal feature's splitter, a leaf that answers by majority class) goes to River itself.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from typing import Any

_HALF_LOG_TAU = 0.5 * math.log(math.tau)  # as river.proba.gaussian
_Terms = tuple[tuple[Any, float, list[tuple[Any, float, float, float]]], ...]


def _class_terms(splitters: Any, c: Any) -> list[tuple[Any, float, float, float]] | None:
    """[(feature, mean, -2 variance, 0.5 log variance), ...] of class ``c`` in the splitters' order; None when a
    splitter is not Gaussian (River answers)."""
    from river.proba import Gaussian
    from river.tree.splitter import GaussianSplitter

    terms = []
    for att, splitter in splitters.items():
        if type(splitter) is not GaussianSplitter:
            return None
        dist = splitter._att_dist_per_class.get(c)
        if dist is None:
            continue  # River: -inf, not added
        if type(dist) is not Gaussian:
            return None
        var = dist._var
        n = var.mean.n
        if n > var.ddof:
            variance = var._S / (n - var.ddof)
            if variance > 0.0:
                terms.append((att, var.mean._mean, -2.0 * variance, 0.5 * math.log(variance)))
    return terms


def _leaf_terms(leaf: Any, per_class: dict[Any, tuple[float, list[Any]]] | None = None) -> _Terms | None:
    """Per class with weight: (class, log prior, its :func:`_class_terms`); None when River must answer.

    ``per_class`` (a learning leaf): class -> (its weight when read, its terms), reused while the class's weight
    is unchanged. Why that is safe: a leaf learns a label only through the label's own class (its weight grows
    by the example's positive weight, and only that class's Gaussians change), so a class whose weight did not
    move has the same Gaussians. The caller keys ``per_class`` by the leaf and its splitters dict.
    """
    stats = leaf.stats
    total = sum(stats.values())
    out = []
    for c, weight in stats.items():
        if not weight > 0:
            return None  # River gives such a class 0.0 without its likelihood: rare, left to River
        prior = math.log(weight / total)
        cached = None if per_class is None else per_class.get(c)
        if cached is not None and cached[0] == weight:
            terms = cached[1]
        else:
            fresh = _class_terms(leaf.splitters, c)
            if fresh is None:
                return None
            terms = fresh
            if per_class is not None:
                per_class[c] = (weight, terms)
        out.append((c, prior, terms))
    return tuple(out)


def _naive_bayes(terms: _Terms, x: dict[str, float]) -> dict[Any, float]:
    votes = {}
    for c, prior, feats in terms:
        v = prior
        for att, mu, neg2var, half_log_var in feats:
            if att in x:
                log_p = (x[att] - mu) ** 2 / neg2var - _HALF_LOG_TAU - half_log_var
                if log_p > -math.inf:
                    v += log_p
        votes[c] = v
    max_ll = max(votes.values())
    lse = max_ll + math.log(sum(math.exp(lp - max_ll) for lp in votes.values()))
    for c in votes:
        votes[c] = math.exp(votes[c] - lse)
    return votes


def learner_answer(
    raw: dict[Any, float], classes: list[Any], counts: dict[Any, int]
) -> tuple[Any, dict[Any, float]] | None:
    """``Learner.predict_proba_one`` / ``predict_with_proba`` on the estimator's raw probabilities ``raw``: the
    learner's classes only, finite and not negative, normalised, the first class kept on a tie; None when nothing
    is left (the learner's own fallback answers)."""
    proba = {c: float(p) for c, p in raw.items() if c in counts and math.isfinite(p) and p >= 0}
    total = sum(proba.values())
    if total <= 0:
        return None
    proba = {c: p / total for c, p in proba.items()}
    return max(classes, key=lambda c: proba.get(c, -1.0)), proba


def frozen_tree_predictor(
    learner: Any, *, learning: bool = False
) -> Callable[[dict[str, float]], tuple[Any, dict[Any, float]]] | None:
    """``learner.predict_with_proba(xc, cleaned=True)`` for a ``hoeffding_tree`` classifier, else None.

    Frozen (the default): the learner must not learn while this is used (the leaf terms are cached). ``learning``:
    the terms are read afresh for every prediction (the tree learns between them; still River's arithmetic without
    its per-feature calls), and each leaf's naive Bayes answer is recorded for the ``learn_one`` that follows (see
    below: the caller must call :func:`forget_recorded` once the label is learned, or not).
    """
    from river.tree import HoeffdingTreeClassifier
    from river.tree.nodes.branch import DTBranch
    from river.tree.nodes.htc_nodes import LeafNaiveBayes, LeafNaiveBayesAdaptive

    tree = getattr(learner, "model", None)
    if getattr(learner, "task", None) != "classification" or type(tree) is not HoeffdingTreeClassifier:
        return None
    if len(learner._classes) < 2:
        return None  # {} or a single class: the learner answers without the tree
    if getattr(learner, "_complete_names", ()):
        return None  # string features: the learner completes absent one-hot indicators before the tree sees x
    if learning and not _install_memo():
        return None
    cache: dict[int, tuple[Any, _Terms | None]] = {}
    learning_cache: dict[int, tuple[Any, Any, dict[Any, tuple[float, list[Any]]]]] = {}
    classes, counts = list(learner._classes), learner._counts
    slow = learner.predict_with_proba
    memo = _MEMO

    def leaf_prediction(leaf: Any, x: dict[str, float]) -> dict[Any, float]:
        kind = type(leaf)
        if kind is LeafNaiveBayesAdaptive:
            naive = leaf.is_active() and leaf._nb_correct_weight >= leaf._mc_correct_weight
        elif kind is LeafNaiveBayes:
            naive = leaf.is_active() and leaf.total_weight >= tree.nb_threshold
        else:
            naive = False
        if not naive or not leaf.stats or sum(leaf.stats.values()) == 0:
            return leaf.prediction(x, tree=tree)
        if learning:
            held = learning_cache.get(id(leaf))
            if held is None or held[0] is not leaf or held[1] is not leaf.splitters:
                held = learning_cache[id(leaf)] = (leaf, leaf.splitters, {})
            terms = _leaf_terms(leaf, held[2])
            if terms is None:
                return leaf.prediction(x, tree=tree)  # recorded by the memo (recording is on)
            answer = _naive_bayes(terms, x)
            memo.pending.append((x, leaf.stats, leaf.splitters, answer))
            return answer
        entry = cache.get(id(leaf))
        if entry is None or entry[0] is not leaf:
            entry = cache[id(leaf)] = (leaf, _leaf_terms(leaf))
        terms = entry[1]
        if terms is None:
            return leaf.prediction(x, tree=tree)
        return _naive_bayes(terms, x)

    def predict(xc: dict[str, float]) -> tuple[Any, dict[Any, float]]:
        # HoeffdingTreeClassifier.predict_proba_one, then Learner.predict_proba_one / predict_with_proba.
        try:
            raw = {c: 0.0 for c in sorted(tree.classes)}
            root = tree._root
            if root is not None:
                leaf = root.traverse(xc, until_leaf=True) if isinstance(root, DTBranch) else root
                raw.update(leaf_prediction(leaf, xc))
        except ArithmeticError:
            return slow(xc, cleaned=True)
        return learner_answer(raw, classes, counts) or slow(xc, cleaned=True)

    if not learning:
        return predict

    def predict_recording(xc: dict[str, float]) -> tuple[Any, dict[Any, float]]:
        memo.recording = True  # River's own fallbacks record their naive Bayes answers too
        try:
            return predict(xc)
        finally:
            memo.recording = False

    return predict_recording


# -- a learning tree: its naive Bayes answer computed once per label ---------------------------------------------
# River's adaptive leaf (``LeafNaiveBayesAdaptive``) computes the leaf's naive Bayes answer when it learns (to count
# whether naive Bayes or the majority class would have been right), and the trainer has just asked the same tree,
# on the same leaf and the same cleaned ``x``, for its prediction: the same pure function of the same unchanged
# state, half of a learning tree's naive Bayes time. While the trainer predicts with a learning tree the answers
# are recorded; the learn that follows takes its own answer back, matched by the identity of ``x``, the leaf's class
# counts and its splitters (a different leaf, a copy or another tree misses and is computed as before). The
# trainer forgets what is left after each label, before the tree can change.


class _Memo(threading.local):
    def __init__(self) -> None:
        self.recording = False
        self.pending: list[tuple[Any, Any, Any, Any]] = []  # (x, stats, splitters, answer)


_MEMO = _Memo()
_ORIGINAL_NB: Callable[..., Any] | None = None


def _memo_naive_bayes(x: Any, observed_class_distribution: Any, splitters: Any) -> Any:
    memo = _MEMO
    pending = memo.pending
    for k, (px, ps, psp, answer) in enumerate(pending):
        if px is x and ps is observed_class_distribution and psp is splitters:
            del pending[k]
            return answer
    answer = _ORIGINAL_NB(x, observed_class_distribution, splitters)  # type: ignore[misc]
    if memo.recording:
        pending.append((x, observed_class_distribution, splitters, answer))
    return answer


def _install_memo() -> bool:
    """Route ``river.tree.nodes.htc_nodes``' naive Bayes through the memo (once per process); False if River's
    module does not look as expected (then nothing is changed and nothing is recorded)."""
    global _ORIGINAL_NB
    if _ORIGINAL_NB is not None:
        return True
    from river.tree import utils
    from river.tree.nodes import htc_nodes

    if getattr(htc_nodes, "do_naive_bayes_prediction", None) is not utils.do_naive_bayes_prediction:
        return False
    _ORIGINAL_NB = utils.do_naive_bayes_prediction
    htc_nodes.do_naive_bayes_prediction = _memo_naive_bayes
    return True


def learning_tree_predictor(learner: Any) -> Callable[[dict[str, float]], Any] | None:
    """``learner.predict_one(xc, cleaned=True)`` for a learning ``hoeffding_tree`` classifier that records its naive
    Bayes answer for the ``learn_one(xc, ...)`` that follows, or None for any other learner (or one with fewer
    than two labels). The caller must call :func:`forget_recorded` once the label is learned (or not)."""
    predict = frozen_tree_predictor(learner, learning=True)
    if predict is None:
        return None
    return lambda xc: predict(xc)[0]


def forget_recorded() -> None:
    """Drop answers recorded and not taken back (the tree did not learn that label, or learned another leaf)."""
    if _MEMO.pending:
        _MEMO.pending.clear()
