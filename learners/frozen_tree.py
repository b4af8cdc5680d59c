"""Predictions of a frozen Hoeffding tree classifier with each leaf's naive Bayes terms computed once.

Why: a Hoeffding tree's leaf answers with naive Bayes (``leaf_prediction="nba"``, River's default), and River
recomputes every Gaussian's variance, square root and logarithm for every feature, class and prediction: about
nine tenths of a tree's prediction time. The trainer's frozen models (probation's previous snapshot, the served
one when an example carries no current answer) never learn, so those numbers are fixed per leaf: this module
reads them once per leaf and then does River's own arithmetic on them, in River's order
(``river.tree.utils.do_naive_bayes_prediction``, ``proba.Gaussian.log_pdf``), so the answers are River's.

Only a plain ``HoeffdingTreeClassifier`` whose leaves hold Gaussian splitters is handled; anything else (another
tree, a nominal feature's splitter, a leaf that answers by majority class) goes to River itself.

:class:`FrozenTreeRows` (session 15) answers many rows of a frozen tree at once, its naive Bayes sums in numpy in
River's order (the sentinel's copies, asked at every label: ~5.5 us a row against ~9.5 per row,
``python -m bench.learn_parts``); the answers stay River's to the bit (tests/test_learners_frozen_tree_rows.py).
"""

from __future__ import annotations

import contextlib
import math
import threading
import weakref
from collections.abc import Callable
from typing import Any

from learners import nb_kernel, tree_learn

_HALF_LOG_TAU = 0.5 * math.log(math.tau)  # as river.proba.gaussian
_Terms = tuple[tuple[Any, float, list[tuple[Any, float, float, float]]], ...]


def _class_terms(splitters: Any, c: Any) -> list[tuple[Any, float, float, float]] | None:
    """[(feature, mean, -2 variance, 0.5 log variance), ...] of class ``c`` in the splitters' order; None when a
    splitter is not Gaussian (River answers)."""
    gaussian_splitter, gaussian = _GAUSSIAN or _gaussian_types()
    log = math.log
    terms: list[tuple[Any, float, float, float]] = []
    append = terms.append
    for att, splitter in splitters.items():
        if type(splitter) is not gaussian_splitter:
            return None
        dist = splitter._att_dist_per_class.get(c)
        if dist is None:
            continue  # River: -inf, not added
        if type(dist) is not gaussian:
            return None
        var = dist._var
        mean = var.mean
        n = mean.n
        ddof = var.ddof
        if n > ddof:
            variance = var._S / (n - ddof)
            if variance > 0.0:
                append((att, mean._mean, -2.0 * variance, 0.5 * log(variance)))
    return terms


# (LeafNaiveBayes, LeafNaiveBayesAdaptive, learners.settled_tree's adaptive leaf, its settled(), its plain naive
# Bayes leaf), imported once: every prediction asks how its leaf answers.
_NB_LEAVES: tuple[Any, Any, Any, Any, Any] | None = None


def _answers_naive(leaf: Any, tree: Any) -> bool:
    """Whether River's ``leaf.prediction`` answers by naive Bayes: River's rule for its two naive Bayes leaves (an
    active leaf, adaptive when naive Bayes has been right at least as often as the majority class, plain past
    ``nb_threshold``), with some weight seen; ``learners.settled_tree``'s adaptive leaf River's rule once it has
    settled. Every path of this module asks it, so a River upgrade changes one place.
    """
    global _NB_LEAVES
    if _NB_LEAVES is None:
        from river.tree.nodes.htc_nodes import LeafNaiveBayes, LeafNaiveBayesAdaptive

        from learners.settled_tree import SettledLeafNaiveBayes, SettledLeafNaiveBayesAdaptive, settled

        _NB_LEAVES = (
            LeafNaiveBayes,
            LeafNaiveBayesAdaptive,
            SettledLeafNaiveBayesAdaptive,
            settled,
            SettledLeafNaiveBayes,
        )
    kind = type(leaf)
    if kind is _NB_LEAVES[2]:  # learners.settled_tree: River's rule once the leaf has seen enough of its own
        naive = (
            _NB_LEAVES[3](leaf) and leaf.is_active() and leaf._nb_correct_weight >= leaf._mc_correct_weight
        )
    elif kind is _NB_LEAVES[4]:  # the same for the plain naive Bayes leaf
        naive = _NB_LEAVES[3](leaf) and leaf.is_active() and leaf.total_weight >= tree.nb_threshold
    elif kind is _NB_LEAVES[1]:
        naive = leaf.is_active() and leaf._nb_correct_weight >= leaf._mc_correct_weight
    elif kind is _NB_LEAVES[0]:
        naive = leaf.is_active() and leaf.total_weight >= tree.nb_threshold
    else:
        return False
    return bool(naive and leaf.stats and sum(leaf.stats.values()) != 0)


# (GaussianSplitter, Gaussian), imported once: the champion's prediction reads one class's terms per label.
_GAUSSIAN: tuple[Any, Any] | None = None


def _gaussian_types() -> tuple[Any, Any]:
    global _GAUSSIAN
    from river.proba import Gaussian
    from river.tree.splitter import GaussianSplitter

    _GAUSSIAN = (GaussianSplitter, Gaussian)
    return _GAUSSIAN


def _leaf_terms(leaf: Any, per_class: dict[Any, tuple[float, list[Any]]] | None = None) -> _Terms | None:
    """Per class with weight: (class, log prior, its :func:`_class_terms`); None when River must answer.

    ``per_class`` (a learning leaf): class -> (its weight when read, its terms), reused while the class's weight
    is unchanged. Why that is safe: a leaf learns a label only through the label's own class (its weight grows
    by the example's positive weight, and only that class's Gaussians change), so a class whose weight did not
    move has the same Gaussians. The caller keys ``per_class`` by the leaf and its splitters dict.
    """
    tree_learn.flush_splitters(leaf.splitters)  # a learning leaf's mirror: River's objects as it learned them
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
    half_log_tau, neg_inf = _HALF_LOG_TAU, -math.inf  # (read once, not per term)
    for c, prior, feats in terms:
        v = prior
        for att, mu, neg2var, half_log_var in feats:
            if att in x:
                log_p = (x[att] - mu) ** 2 / neg2var - half_log_tau - half_log_var
                if log_p > neg_inf:
                    v += log_p
        votes[c] = v
    return _normalise(votes)


def _normalise(votes: dict[Any, float]) -> dict[Any, float]:
    """River's log-sum-exp normalisation of the log likelihoods ``votes``, in place (the same sum, in the same
    order, of a list instead of a generator)."""
    exp = math.exp
    max_ll = max(votes.values())
    lse = max_ll + math.log(sum([exp(lp - max_ll) for lp in votes.values()]))
    for c, lp in votes.items():
        votes[c] = exp(lp - lse)
    return votes


def learner_answer(
    raw: dict[Any, float], classes: list[Any], counts: dict[Any, int]
) -> tuple[Any, dict[Any, float]] | None:
    """``Learner.predict_proba_one`` / ``predict_with_proba`` on the estimator's raw probabilities ``raw``: the
    learner's classes only, finite and not negative, normalised, the first class kept on a tie; None when nothing
    is left (the learner's own fallback answers)."""
    # (Loops rather than comprehensions and ``max`` with a key: each tree prediction of the trainer ends here,
    # about three per label. The same values, in the same order; the first class kept on a tie, as ``max``.)
    isfinite = math.isfinite
    proba: dict[Any, float] = {}
    for c, p in raw.items():
        if c in counts and isfinite(p) and p >= 0:
            proba[c] = float(p)
    total = sum(proba.values())
    if total <= 0:
        return None
    for c, p in proba.items():
        proba[c] = p / total
    if not classes:
        return max(classes, key=lambda c: proba.get(c, -1.0)), proba  # max's error, as before
    best = classes[0]
    top = proba.get(best, -1.0)
    for c in classes:
        p = proba.get(c, -1.0)
        if p > top:
            best, top = c, p
    return best, proba


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

    from learners.settled_tree import SettledHoeffdingTreeClassifier

    tree = getattr(learner, "model", None)
    if getattr(learner, "task", None) != "classification" or type(tree) not in (
        HoeffdingTreeClassifier,
        SettledHoeffdingTreeClassifier,
    ):
        return None
    assert tree is not None  # (a tree of one of the two types; mypy does not narrow a tuple membership)
    if len(learner._classes) < 2:
        return None  # {} or a single class: the learner answers without the tree
    if getattr(learner, "_complete_names", ()):
        return None  # string features: the learner completes absent one-hot indicators before the tree sees x
    if learning and not _install_memo():
        return None
    cache: dict[int, tuple[Any, _Terms | None]] = {}
    # id(leaf) -> [leaf, its splitters, class -> (weight, terms), its LeafMirror or None, a weight before which
    # no mirror is tried again]
    learning_cache: dict[int, list[Any]] = {}
    classes, counts = list(learner._classes), learner._counts
    slow = learner.predict_with_proba
    memo = _MEMO
    mirrors = learning and nb_kernel.mirror_ready() is not None
    normalised = nb_kernel.NORMALISES

    def mirrored(leaf: Any, held: list[Any], x: dict[str, float]) -> dict[Any, float] | None:
        """The leaf's answer from its mirror (learners.tree_learn.LeafMirror), which then learns the label; None:
        the Python path answers (and learns)."""
        mirror = held[3]
        if mirror is None or not mirror.current(leaf):
            if not leaf.splitters or sum(leaf.stats.values()) < held[4]:
                return None
            mirror = held[3] = tree_learn.mirror_of(leaf, None)
            if mirror is None:  # a leaf the mirror does not model: tried again after 64 more labels there
                held[4] = sum(leaf.stats.values()) + 64
                return None
        kernel = nb_kernel.mirror_ready()
        row = mirror.row(x)
        if kernel is None or row is None:
            return None
        answer = mirror.answer(kernel[0], row)
        if answer is None:
            return None
        tree_learn.expect_mirror(mirror)
        return answer if normalised else _normalise(answer)

    def leaf_prediction(leaf: Any, x: dict[str, float]) -> dict[Any, float]:
        if not _answers_naive(leaf, tree):
            return leaf.prediction(x, tree=tree)
        if learning:
            held = learning_cache.get(id(leaf))
            if held is None or held[0] is not leaf or held[1] is not leaf.splitters:
                held = learning_cache[id(leaf)] = [leaf, leaf.splitters, {}, None, 0.0]
            # The learn that follows puts the learned class's terms into held[2] (learners.tree_learn), or learns
            # through the mirror that answered here.
            tree_learn.expect(leaf.splitters, held[2])
            if mirrors:
                answer = mirrored(leaf, held, x)
                if answer is not None:
                    memo.pending.append((x, leaf.stats, leaf.splitters, answer))
                    return answer
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
        # Frozen: the leaf's kind, activity and weights are fixed, so whether it answers by naive Bayes is decided
        # once per leaf with its terms (None: River answers), and the classes' zero answers are laid out once.
        # With the compiled kernel (learners.nb_kernel) each leaf's terms are also laid out as its arrays, and the
        # naive Bayes answer is computed there (the same bits); a row it does not answer takes _naive_bayes.
        base = {c: 0.0 for c in sorted(tree.classes)}
        naive_cache: dict[int, tuple[Any, _Terms | None, Any]] = {}
        branch = isinstance(tree._root, DTBranch)
        kernel = nb_kernel.ready()
        row = None if kernel is None else kernel[0]
        normalised = nb_kernel.NORMALISES

        def frozen_leaf(leaf: Any) -> tuple[Any, _Terms | None, Any]:
            terms = _leaf_terms(leaf) if _answers_naive(leaf, tree) else None
            return leaf, terms, None if terms is None or row is None else nb_kernel.LeafArrays(terms)

        def predict_frozen(xc: dict[str, float]) -> tuple[Any, dict[Any, float]]:
            try:
                raw = dict(base)
                root: Any = tree._root
                if root is not None:
                    leaf: Any = root.traverse(xc, until_leaf=True) if branch else root
                    entry = naive_cache.get(id(leaf))
                    if entry is None or entry[0] is not leaf:
                        entry = naive_cache[id(leaf)] = frozen_leaf(leaf)
                    terms = entry[1]
                    if terms is None:
                        raw.update(leaf.prediction(xc, tree=tree))
                    else:
                        answer = None if entry[2] is None else entry[2].answer(row, xc)
                        if answer is None:
                            answer = _naive_bayes(terms, xc)
                        elif not normalised:
                            answer = _normalise(answer)
                        raw.update(answer)
            except ArithmeticError:
                return slow(xc, cleaned=True)
            return learner_answer(raw, classes, counts) or slow(xc, cleaned=True)

        return predict_frozen

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
    tree_learn.flush_splitters(splitters)  # River reads the Gaussians: what a mirror learned first
    answer = _ORIGINAL_NB(x, observed_class_distribution, splitters)  # type: ignore[misc]
    if memo.recording:
        pending.append((x, observed_class_distribution, splitters, answer))
    return answer


def _install_memo() -> bool:
    """Route ``river.tree.nodes.htc_nodes``' naive Bayes through the memo (once per process), and its
    class-distribution copies through :func:`_normalised_copy`; False if River's module does not look as expected
    (then nothing is changed and nothing is recorded)."""
    global _ORIGINAL_NB, _ORIGINAL_NORMALISE
    if _ORIGINAL_NB is not None:
        return True
    from river.tree import utils
    from river.tree.nodes import htc_nodes
    from river.utils import norm

    if getattr(htc_nodes, "do_naive_bayes_prediction", None) is not utils.do_naive_bayes_prediction:
        return False
    _ORIGINAL_NB = utils.do_naive_bayes_prediction
    htc_nodes.do_naive_bayes_prediction = _memo_naive_bayes
    tree_learn.install()  # the leaves' splitter update, fused (the same statements: see learners.tree_learn)
    if getattr(htc_nodes, "normalize_values_in_dict", None) is norm.normalize_values_in_dict:
        _ORIGINAL_NORMALISE = norm.normalize_values_in_dict
        htc_nodes.normalize_values_in_dict = _normalised_copy
    return True


# River's ``normalize_values_in_dict``, kept while htc_nodes' name points at :func:`_normalised_copy`.
_ORIGINAL_NORMALISE: Callable[..., Any] | None = None
# Keys and values a deep copy returns as they are (``copy._deepcopy_atomic``).
_ATOMS = frozenset((str, int, bool, float))


def _normalised_copy(
    dictionary: Any, factor: Any = None, inplace: bool = True, raise_error: bool = False
) -> Any:
    """``normalize_values_in_dict(dictionary, inplace=False)`` as River computes it, for a leaf's class counts.

    Why: an adaptive naive Bayes leaf learns each label by first asking its majority-class answer
    (``LeafMajorityClass.prediction``), a normalised *deep copy* of its class counts: ``copy.deepcopy`` of a
    two-entry dict costs ~1.2 us, once per label of a learning tree. For a plain dict whose keys and values are
    atoms (what the deep copy returns as they are) the deep copy is ``dict(dictionary)``, same order; the factor
    and the scaling are River's statements (the sum of the values, then ``value * (1 / factor)`` in place). Any
    other call goes to River's function."""
    original = _ORIGINAL_NORMALISE
    assert original is not None  # installed only with it
    if inplace or factor is not None or raise_error or type(dictionary) is not dict:
        return original(dictionary, factor, inplace, raise_error)
    atoms = _ATOMS
    for key, value in dictionary.items():
        if type(key) not in atoms or type(value) not in atoms:
            return original(dictionary, factor, inplace, raise_error)
    factor = sum(dictionary.values())
    out = dict(dictionary)
    if factor == 0 or math.isnan(factor):
        return out
    multiplier = 1 / factor
    for key, value in out.items():
        out[key] = value * multiplier
    return out


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
    tree_learn.forget()


# -- a frozen tree over many rows: the naive Bayes sums in numpy ---------------------------------------------------
# Why: the trainer's frozen trees (each sentinel copy on every label, the served snapshot when an example carries
# no current answer, probation's previous model) spend most of their prediction in :func:`_naive_bayes`' 40-term
# Python loop (20 features x 2 classes). Their rows are known a batch ahead, so the terms of every row are computed
# as arrays and summed in River's order (one vector addition per term position, each row's terms in its leaf's
# splitter order, absent terms adding 0.0, which leaves a float unchanged). The answers stay River's to the bit:
# subtraction, division and addition are IEEE operations in numpy as in Python, but ``d ** 2`` is libm's ``pow``,
# which is not always ``d * d`` (~0.08 % of random doubles differ by one ulp: ``pow``'s error is up to 0.52 ulp,
# the product's 0.5). So the square is ``d * d`` with its exact rounding error (Dekker's product), and each square
# within ``_POW_MARGIN`` ulp of a rounding midpoint -- the only ones ``pow`` can round the other way -- is computed
# again by ``pow`` itself (about 1 in 10; none of 6M random squares differed outside 0.49 ulp). The normalisation
# (``exp``, ``log``) stays per row in Python: numpy's own ``exp`` need not round as libm's does.

_POW_MARGIN = 0.45  # ulp from the product's rounding error beyond which pow's own answer is taken
_SPLIT = 134217729.0  # 2**27 + 1: Veltkamp's split of a double into two 26-bit halves


def _squares(d: Any) -> Any:
    """``d ** 2`` elementwise as Python's float ``pow`` gives it (see above); ``d`` finite float64."""
    import numpy as np

    with np.errstate(over="ignore", invalid="ignore"):
        sq = d * d
        c = _SPLIT * d
        hi = c - (c - d)
        lo = d - hi
        err = ((hi * hi - sq) + 2.0 * hi * lo) + lo * lo
        near = np.abs(err) > _POW_MARGIN * np.spacing(sq)
        # At a power of two the gap below is half the gap above: take pow's answer there too.
        near |= np.frexp(sq)[0] == 0.5
    if near.any():
        sq[near] = [_pow2(v) for v in d[near].tolist()]
    return sq


def _pow2(v: float) -> float:
    try:
        return v**2
    except OverflowError:  # River raises here: the row goes to the per-row path (a non-finite square)
        return math.inf


class FrozenTreeRows:
    """:func:`frozen_tree_predictor`'s answers for many rows of one feature-name tuple at once (a frozen tree).

    :meth:`predict` returns, per row, ``learner.predict_with_proba(xc, cleaned=True)`` or None where the row is
    left to the per-row predictor (a leaf that does not answer by naive Bayes with Gaussian terms, a non-finite
    term: what River itself would handle differently). The learner must not learn while this is used.
    """

    def __init__(self, learner: Any) -> None:
        self.learner = learner
        self.tree = learner.model
        self.classes, self.counts = list(learner._classes), learner._counts
        self.slow = learner.predict_with_proba
        # id(leaf) -> (leaf, its terms or None); per names: id(leaf) -> (leaf, slot) into the stacked arrays.
        self._terms: dict[int, tuple[Any, _Terms | None]] = {}
        self._slots: dict[tuple[str, ...], tuple[dict[int, tuple[Any, int]], list[Any], Any]] = {}

    def _naive(self, leaf: Any) -> _Terms | None:
        entry = self._terms.get(id(leaf))
        if entry is not None and entry[0] is leaf:
            return entry[1]
        terms = _leaf_terms(leaf) if _answers_naive(leaf, self.tree) else None
        self._terms[id(leaf)] = (leaf, terms)
        return terms

    def _arrays(self, names: tuple[str, ...], slots: list[_Terms]) -> tuple[Any, ...]:
        """Per slot (a leaf), per class in the leaf's order, its terms padded to the longest: column (``len(names)``
        for no term: a column of zeros), mean, -2 variance, half log variance, present; and the log priors."""
        import numpy as np

        col = {n: j for j, n in enumerate(names)}
        n_c = max(len(t) for t in slots)
        n_k = max((len(f) for t in slots for _, _, f in t), default=0) or 1
        shape = (len(slots), n_c, n_k)
        cols = np.full(shape, len(names), dtype=np.intp)
        mu, neg2var, hlv = np.zeros(shape), np.full(shape, -1.0), np.zeros(shape)
        present = np.zeros(shape, dtype=bool)
        prior = np.zeros(shape[:2])
        for s, terms in enumerate(slots):
            for ci, (_, p, feats) in enumerate(terms):
                prior[s, ci] = p
                for k, (att, m, n2v, h) in enumerate(feats):
                    j = col.get(att)
                    if j is None:
                        continue  # not in x: River adds nothing
                    cols[s, ci, k], mu[s, ci, k], neg2var[s, ci, k], hlv[s, ci, k] = j, m, n2v, h
                    present[s, ci, k] = True
        # The compiled kernel's layout (learners.nb_kernel): column -1 for no term, and each slot's class count.
        kcols = np.where(present, cols, -1).astype(np.intp)
        n_classes = np.array([len(t) for t in slots], dtype=np.intp)
        return cols, mu, neg2var, hlv, present, prior, kcols, n_classes

    def _predict_compiled(
        self,
        kernel: Callable[..., None],
        xcs: list[dict[str, float]],
        values: Any,
        rows: list[int],
        at: list[int],
        slots: list[_Terms],
        arrays: tuple[Any, ...],
        out: list[Any],
    ) -> list[Any]:
        """:meth:`predict`'s sums and normalisation by :mod:`learners.nb_kernel` (the same bits): rows ``rows`` of
        ``values`` at leaves ``at``; a row it does not answer is left None (the per-row path decides)."""
        import numpy as np

        _, mu, neg2var, hlv, _, prior, kcols, n_classes = arrays
        X = np.ascontiguousarray(values, dtype=np.float64)
        n = len(rows)
        probs = np.empty((n, prior.shape[1]))
        status = np.empty(n, dtype=np.int8)
        idx, slot = np.array(rows, dtype=np.intp), np.array(at, dtype=np.intp)
        kernel(X, idx, slot, kcols, mu, neg2var, hlv, prior, n_classes, nb_kernel.PARAMS, probs, status)
        normalised = nb_kernel.NORMALISES
        base = {c: 0.0 for c in sorted(self.tree.classes)}
        classes, counts, slow = self.classes, self.counts, self.slow
        labels = [[t[0] for t in terms] for terms in slots]
        if normalised and classes:
            return self._answers(rows, at, status.tolist(), probs.tolist(), labels, base, xcs, out)
        for i, s, good, ps in zip(rows, at, status.tolist(), probs.tolist(), strict=True):
            if good != nb_kernel.OK:
                continue
            cs = labels[s]
            answer = dict(zip(cs, ps, strict=False))  # the leaf's classes, in its order (ps is padded)
            if not normalised:
                try:
                    answer = _normalise(answer)
                except ArithmeticError:
                    continue
            raw = dict(base)
            raw.update(answer)
            out[i] = learner_answer(raw, classes, counts) or slow(xcs[i], cleaned=True)
        return out

    def _answers(
        self,
        rows: list[int],
        at: list[int],
        status: list[int],
        probs: list[list[float]],
        labels: list[list[Any]],
        base: dict[Any, float],
        xcs: list[dict[str, float]],
        out: list[Any],
    ) -> list[Any]:
        """:func:`learner_answer` of each row's raw probabilities (the tree's classes at 0.0 updated with the
        leaf's answer), with the raw dictionary's key order and the learner's class filter read once per leaf
        instead of per row (session 24: the reference snapshot and the sentinel's copies ask every label): the
        same values, added, divided and compared in the same order."""
        classes, counts, slow = self.classes, self.counts, self.slow
        isfinite = math.isfinite
        first = classes[0]
        # Per leaf: (class, position in the row's probabilities or -1 for the tree's 0.0) in the raw dictionary's
        # order (the tree's classes, sorted, then any of the leaf's it lacks), the learner's classes only.
        plans: dict[int, list[tuple[Any, int]]] = {}
        for i, s, good, ps in zip(rows, at, status, probs, strict=True):
            if good != nb_kernel.OK:
                continue
            plan = plans.get(s)
            if plan is None:
                cs = labels[s]
                where = {c: k for k, c in enumerate(cs)}
                order = [*base, *(c for c in cs if c not in base)]
                plan = plans[s] = [(c, where.get(c, -1)) for c in order if c in counts]
            proba: dict[Any, float] = {}
            for c, k in plan:
                p = ps[k] if k >= 0 else 0.0
                if isfinite(p) and p >= 0:
                    proba[c] = p
            total = sum(proba.values())
            if total <= 0:
                out[i] = slow(xcs[i], cleaned=True)
                continue
            for c, p in proba.items():
                proba[c] = p / total
            best = first
            top = proba.get(best, -1.0)
            for c in classes:
                p = proba.get(c, -1.0)
                if p > top:
                    best, top = c, p
            out[i] = (best, proba)
        return out

    def predict(self, xcs: list[dict[str, float]], names: tuple[str, ...], values: Any) -> list[Any]:
        """Answers for rows ``xcs`` (cleaned, all with the keys ``names``; ``values`` their float64 matrix)."""
        import numpy as np
        from river.tree.nodes.branch import DTBranch

        out: list[Any] = [None] * len(xcs)
        root = self.tree._root
        if root is None or not xcs:
            return out
        known = self._slots.get(names)
        if known is None:
            known = self._slots[names] = ({}, [], None)
        index, slots, arrays = known
        rows, at = [], []
        grown = False
        branch = isinstance(root, DTBranch)  # once per call, not per row (the tree is frozen)
        for i, xc in enumerate(xcs):
            try:
                leaf = root.traverse(xc, until_leaf=True) if branch else root
            except ArithmeticError:
                continue
            held = index.get(id(leaf))
            if held is None or held[0] is not leaf:
                terms = self._naive(leaf)
                if terms is None:
                    continue
                held = index[id(leaf)] = (leaf, len(slots))
                slots.append(terms)
                grown = True
            rows.append(i)
            at.append(held[1])
        if not rows:
            return out
        if grown or arrays is None:
            arrays = self._arrays(names, slots)
            self._slots[names] = (index, slots, arrays)
        kernel = nb_kernel.ready()
        if kernel is not None:
            return self._predict_compiled(kernel[1], xcs, values, rows, at, slots, arrays, out)
        cols, mu, neg2var, hlv, present, prior = arrays[:6]
        slot = np.array(at, dtype=np.intp)
        x = np.hstack([values[rows], np.zeros((len(rows), 1))])  # the extra column: no term
        c = cols[slot]
        xv = np.take_along_axis(x[:, None, :], c.reshape(len(rows), -1)[:, None, :], axis=2).reshape(c.shape)
        d = xv - mu[slot]
        ok = np.isfinite(d).all(axis=(1, 2))
        d[~ok] = 0.0
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            sq = _squares(d)
            log_p = sq / neg2var[slot] - _HALF_LOG_TAU - hlv[slot]
        keep = present[slot] & (log_p > -math.inf)
        ok &= np.isfinite(sq).all(axis=(1, 2))
        contrib = np.where(keep, log_p, 0.0)
        v = prior[slot]
        for k in range(contrib.shape[2]):  # River's order: term by term, left to right
            v = v + contrib[:, :, k]
        sums = v.tolist()
        good = ok.tolist()
        base = {c: 0.0 for c in sorted(self.tree.classes)}
        classes, counts, slow = self.classes, self.counts, self.slow
        labels = [[t[0] for t in terms] for terms in slots]
        exp, log = math.exp, math.log
        for r, i in enumerate(rows):
            if not good[r]:
                continue  # an overflow River raises on: the per-row path decides
            cs = labels[at[r]]
            row = sums[r][: len(cs)]
            # _normalise, inlined (the same operations in the same order): the leaf's classes in its order.
            try:
                top = max(row)
                lse = top + log(sum([exp(lp - top) for lp in row]))
                raw = dict(base)
                for c, lp in zip(cs, row, strict=True):
                    raw[c] = exp(lp - lse)
            except ArithmeticError:
                continue
            out[i] = learner_answer(raw, classes, counts) or slow(xcs[i], cleaned=True)
        return out


def frozen_tree_rows(learner: Any) -> FrozenTreeRows | None:
    """A :class:`FrozenTreeRows` for a frozen ``hoeffding_tree`` classifier that :func:`frozen_tree_predictor`
    handles, else None."""
    if frozen_tree_predictor(learner) is None:
        return None
    return FrozenTreeRows(learner)


# A frozen model's predictors outlive the batch: a sentinel copy is asked at every label for thousands of labels,
# and each leaf's terms (the per-row predictor's and the rows' stacked arrays) cost ~1 ms per model to read again
# per batch. Kept by the learner (weakly: an entry goes with its model) with its ``learned_mark()``: a learner that
# learned since, or changed estimator, gets new ones.
_KEPT: weakref.WeakKeyDictionary[Any, tuple[Any, Any, FrozenTreeRows | None]] = weakref.WeakKeyDictionary()
_KEPT_MAX = 64  # served snapshots, previous models and sentinel copies alive at once are a handful


def kept_tree_predictors(
    learner: Any,
) -> tuple[Callable[[dict[str, float]], tuple[Any, dict[Any, float]]] | None, FrozenTreeRows | None]:
    """(:func:`frozen_tree_predictor`, :class:`FrozenTreeRows`) of a frozen learner, the same objects for as long
    as it learns nothing; (None, None) for a learner they do not handle."""
    mark = learner.learned_mark()
    try:
        held = _KEPT.get(learner)
    except TypeError:  # not weakly referenceable: built afresh
        held = None
    if held is not None and held[0] == mark:
        return held[1], held[2]
    fn = frozen_tree_predictor(learner)
    rows = None if fn is None else FrozenTreeRows(learner)
    if len(_KEPT) >= _KEPT_MAX:
        _KEPT.clear()
    with contextlib.suppress(TypeError):
        _KEPT[learner] = (mark, fn, rows)
    return fn, rows
