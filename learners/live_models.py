"""Shortcuts for the trainer's *learning* models (the champion and a challenger): their prediction before each label
and their learn, with River's arithmetic in River's order and without its layers between calls.

Why: ``ModelLifecycle.learn_batch`` predicts with the champion (and a challenger) and then teaches it, for every
label; the frozen models are batched in :mod:`learners.batch`, but a learning model changes after every label, so
it is made cheaper per call instead. Each shortcut is checked against the learner it replaces
(tests/test_learners_fast_paths.py) and steps aside (the learner answers) for any model shape it does not know.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from learners.features import FeatureScaler
from learners.frozen_tree import learning_tree_predictor


def _binary_scaled_lr(learner: Any) -> tuple[list[Any], Any, Any, Any] | None:
    """``(classes, pipeline, scaler, lr)`` of a binary classification learner whose model is exactly
    ``StandardScaler | LogisticRegression`` (or ``FeatureScaler``) with standardisation, no window and the log
    loss: the shape both LR shortcuts know; None for any other."""
    from river import compose, linear_model, optim, preprocessing

    if getattr(learner, "task", None) != "classification" or not getattr(learner, "_binary", False):
        return None
    classes = list(learner._classes)
    model = learner.model
    if len(classes) != 2 or not isinstance(model, compose.Pipeline) or len(model.steps) != 2:
        return None
    scaler, lr = model.steps.values()
    if type(scaler) not in (preprocessing.StandardScaler, FeatureScaler):
        return None
    if not scaler.with_std or scaler.window_size is not None:
        return None
    if type(lr) is not linear_model.LogisticRegression or type(lr.loss) is not optim.losses.Log:
        return None
    return classes, model, scaler, lr


def _fast_binary_lr(learner: Any) -> Callable[[dict[str, float]], Any] | None:
    """``learner.predict_one(xc, cleaned=True)`` for a learning binary ``StandardScaler | LogisticRegression``
    learner, without River's pipeline and the wrapper's dicts, or None for any other model.

    Why: the trainer predicts with the champion (and a challenger) before every label it learns, and about half
    of that prediction is pipeline overhead. The arithmetic is River's own, in the same order (the scaler's
    ``transform_one``, the weights' ``dot``, the loss's ``mean_func``), and it reads the live model, so it stays
    right while the model learns. Valid while the learner keeps the same River model and its two classes (the
    caller checks, see :class:`_Fast`).
    """
    shape = _binary_scaled_lr(learner)
    if shape is None:
        return None
    classes, _, scaler, lr = shape
    c0, c1 = classes
    slow = learner.predict_one
    means, vars_ = scaler.means, scaler.vars
    learned = vars_.keys()  # a live view: the keys the scaler has learned
    # FeatureScaler (what learners.specs builds) has its own transform (indicators pass).
    feature_scaler = type(scaler) is FeatureScaler

    def proba(xc: dict[str, float]) -> float:
        """River's P(classes[1]) for ``xc``: ``mean_func(dot(transform(xc)) + intercept)``."""
        if feature_scaler:
            # FeatureScaler.transform_one and VectorDict.dot in one loop: the same reads of the scaler's statistics
            # in the same order, and the dot's sum from 0.0 in the order of the transformed dict, a missing weight
            # counting 0.0 * t_i as River's does.
            w = lr._weights.to_dict()
            if not xc.keys() <= learned:
                # A key the scaler never learned transforms to 0.0 and has no weight: a 0.0 term, left out
                # rather than read (a read of River's defaultdicts would insert it).
                xc = {i: xi for i, xi in xc.items() if i in vars_}
            dot = 0.0
            for i, xi in xc.items():
                ti = (xi - means[i]) / v**0.5 if (v := vars_[i]) else (xi if means[i] == 1.0 else 0.0)
                dot += w.get(i, 0.0) * ti
        else:
            t = {}
            for i, xi in xc.items():
                v = vars_[i]
                t[i] = (xi - means[i]) / v**0.5 if v else 0.0
            dot = lr._weights.dot(t)
        return lr.loss.mean_func(dot + lr.intercept)

    def predict(xc: dict[str, float]) -> Any:
        try:
            p = proba(xc)
        except ArithmeticError:
            return slow(xc, cleaned=True)
        if not 0.0 <= p <= 1.0:  # NaN weights: the learner's own fallback
            return slow(xc, cleaned=True)
        return c1 if p > 1.0 - p else c0  # the learner's max() keeps the first class on a tie

    predict.proba = proba  # type: ignore[attr-defined]  # for tests/test_learners_fast_paths.py
    return predict


def _fast_binary_lr_learn(learner: Any) -> Callable[[dict[str, float], Any], None] | None:
    """``learner.learn_one(xc, y, cleaned=True)`` for a binary ``FeatureScaler | LogisticRegression`` learner with
    both its labels seen and plain SGD, without River's pipeline and estimator layers, or None for any other model.

    Why: the champion learns every label, and most of River's ``learn_one`` for this pipeline is calls between
    layers. This is River's own code path, flattened: the learner's label bookkeeping, the scaler's Welford update
    (``StandardScaler.learn_one``, the same expressions with the dict reads kept in locals), its
    ``transform_one``, then ``GLM.learn_one`` with ``SGD``, on the keys the learner may learn
    (``Learner.admit``). With no L2 and zero-initialised weights (the default) the scaler's update, the transform
    and the dot product are one pure-Python loop over the features and the SGD update a second
    (:func:`_fused_lr_learn`); otherwise the weights go through River's ``VectorDict`` primitives (``dot``,
    ``from_scaled``, ``isub_scaled``). Either way the same arithmetic in the same order, so the learned state is
    River's, bit for bit (tests/test_learners_fast_paths.py, tests/test_learners_vocabulary.py). A new label, or
    River's learn-during-predict mode, goes to the learner.
    """
    from river import compose, linear_model, optim, preprocessing
    from river.utils.vectordict import VectorDict

    shape = _binary_scaled_lr(learner)
    if shape is None:
        return None
    classes, model, scaler, lr = shape
    if type(scaler).learn_one is not preprocessing.StandardScaler.learn_one:
        return None
    opt = lr.optimizer
    if type(opt) is not optim.SGD or lr.l1 != 0 or type(lr._weights) is not VectorDict:
        return None
    if (
        type(model).learn_one is not compose.Pipeline.learn_one
        or type(lr).learn_one is not linear_model.base.GLM.learn_one
    ):
        return None
    if (
        not lr.l2
        and type(scaler) is FeatureScaler
        and type(lr.initializer) is optim.initializers.Zeros
        and lr.initializer.value == 0.0
    ):
        return _fused_lr_learn(learner, classes, model, scaler, lr)
    return _vector_lr_learn(learner, classes, model, scaler, lr)


def _fused_lr_learn(
    learner: Any, classes: list[Any], model: Any, scaler: Any, lr: Any
) -> Callable[[dict[str, float], Any], None]:
    """The flattened learn in two loops over the features, no ``VectorDict`` arithmetic (see the caller).

    River's order, step by step: per feature the Welford update (counts, means, variances), then ``FeatureScaler``'s
    transform of the updated statistics (a feature's transform reads only its own, so it can follow its update in
    the same loop), then ``VectorDict.dot`` in learn mode (the sum of ``w_i * t_i`` from 0.0 in the order of ``t``,
    which is the order of ``xc``; a weight the model lacks is 0.0, the initializer's value); the loss gradient,
    clamped; the intercept; then ``isub_scaled(from_scaled(t, g), learning_rate)``: ``w_i - lr * (t_i * g)`` for
    every feature of ``t``, new weights inserted in ``t``'s order, as River's learn-mode dot inserts them.
    """
    c1 = classes[1]
    counts_y = learner._counts
    counts, means, vars_ = scaler.counts, scaler.means, scaler.vars
    gradient = lr.loss.gradient
    opt = lr.optimizer
    slow = learner.learn_one
    admit = learner.admit
    admit({})  # a learner pickled before its vocabulary existed starts one here
    known = learner._known.keys()  # a live view of the keys it has learned

    def learn(xc: dict[str, float], y: Any) -> None:
        if y is None or y not in counts_y or model._LEARN_UNSUPERVISED_DURING_PREDICT:
            slow(xc, y, cleaned=True)
            return
        if not xc.keys() <= known:
            xc = admit(xc)  # Learner.learn_one: the keys this learner may learn (learners.features.admit)
        counts_y[y] += 1
        target = y == c1  # Learner.learn_one: len(classes) > 1 and y == classes[1]
        weights = lr._weights
        w = weights.to_dict()  # a copy: read here, written back below with update()
        t = {}
        dot = 0.0
        for i, xi in xc.items():
            # StandardScaler.learn_one (with_std, no window)
            c = counts[i] + 1
            counts[i] = c
            old_mean = means[i]
            mean = old_mean + (xi - old_mean) / c
            means[i] = mean
            v = vars_[i]
            v = v + ((xi - old_mean) * (xi - mean) - v) / c
            vars_[i] = v
            # FeatureScaler.transform_one: an indicator passes, any other constant is 0
            ti = (xi - mean) / v**0.5 if v else (xi if mean == 1.0 else 0.0)
            t[i] = ti
            dot += w.get(i, 0.0) * ti
        # GLM._eval_gradient_one with w = 1.0 (a multiplication by 1.0 changes nothing), utils.math.clamp
        loss_gradient = gradient(y_true=target, y_pred=dot + lr.intercept)
        clip = lr.clip_gradient
        loss_gradient = float(max(min(loss_gradient, clip), -clip))
        lr.intercept -= lr.intercept_lr.get(opt.n_iterations) * loss_gradient
        rate = opt.learning_rate
        weights.update({i: w.get(i, 0.0) - rate * (ti * loss_gradient) for i, ti in t.items()})
        opt.n_iterations += 1

    return learn


def _vector_lr_learn(
    learner: Any, classes: list[Any], model: Any, scaler: Any, lr: Any
) -> Callable[[dict[str, float], Any], None]:
    """The flattened learn with River's own ``VectorDict`` primitives for the weights (L2, other initializers)."""
    from river.utils.math import clamp
    from river.utils.vectordict import VectorDict

    c1 = classes[1]
    counts_y = learner._counts
    counts, means, vars_ = scaler.counts, scaler.means, scaler.vars
    transform = scaler.transform_one
    gradient = lr.loss.gradient
    from_scaled = VectorDict.from_scaled
    opt = lr.optimizer
    slow = learner.learn_one
    admit = learner.admit
    admit({})  # a learner pickled before its vocabulary existed starts one here
    known = learner._known.keys()  # a live view of the keys it has learned

    def learn(xc: dict[str, float], y: Any) -> None:
        if y is None or y not in counts_y or model._LEARN_UNSUPERVISED_DURING_PREDICT:
            slow(xc, y, cleaned=True)
            return
        if not xc.keys() <= known:
            xc = admit(xc)  # Learner.learn_one: the keys this learner may learn (learners.features.admit)
        counts_y[y] += 1
        target = y == c1  # Learner.learn_one: len(classes) > 1 and y == classes[1]
        # StandardScaler.learn_one (with_std, no window): counts[i] += 1; means[i] += ...; vars_[i] += ...
        for i, xi in xc.items():
            c = counts[i] + 1
            counts[i] = c
            old_mean = means[i]
            mean = old_mean + (xi - old_mean) / c
            means[i] = mean
            v = vars_[i]
            vars_[i] = v + ((xi - old_mean) * (xi - mean) - v) / c
        t = transform(xc)
        # GLM.learn_one -> _fit -> _eval_gradient_one -> SGD.step, with w = 1.0 (SGD's look_ahead does nothing)
        saved = lr._enter_learn_mode(t)
        try:
            loss_gradient = gradient(y_true=target, y_pred=lr._weights.dot(t) + lr.intercept)
            loss_gradient *= 1.0
            loss_gradient = float(clamp(loss_gradient, -lr.clip_gradient, lr.clip_gradient))
            g = from_scaled(t, loss_gradient)
            if lr.l2:
                g.iadd_scaled(lr._weights, lr.l2)
            lr.intercept -= lr.intercept_lr.get(opt.n_iterations) * loss_gradient
            lr._weights.isub_scaled(g, opt.learning_rate)
            opt.n_iterations += 1
        finally:
            lr._exit_learn_mode(saved)

    return learn


class _PoolMembers:
    """The fast paths of each member of an ``auto`` pool, for :meth:`learners.pool.Pool.learn_one`'s ``fast``."""

    __slots__ = ("learns", "predicts")

    def __init__(self) -> None:
        self.predicts: list[_Fast] = []
        self.learns: list[_FastLearn] = []

    def predict(self, k: int, member: Any, xc: dict[str, float]) -> Any:
        while len(self.predicts) <= k:
            self.predicts.append(_Fast())
        return self.predicts[k].predict(member, xc)

    def learn(self, k: int, member: Any, xc: dict[str, float], y: Any) -> None:
        while len(self.learns) <= k:
            self.learns.append(_FastLearn())
        self.learns[k].learn(member, xc, y)


def _fast_pool_learn(learner: Any) -> Callable[[dict[str, float], Any], None] | None:
    """``learner.learn_one(xc, y, cleaned=True)`` for an ``auto`` classifier whose label is known, with every
    member tested and trained through its own fast path (:class:`_Fast`, :class:`_FastLearn`), or None for any
    other learner.

    Why: the default learner is a pool, and its learn is every member's prediction (the test of test-then-train)
    and learn, River's slow paths for each (three quarters of the default trainer's time per label). The outer
    learner's bookkeeping for a known label is ``Learner.learn_one``'s (count it, complete the indicators, hand
    it to the pool); a new label, or any other case, goes to the learner.
    """
    from learners.pool import Pool

    pool = learner._model
    if type(pool) is not Pool or learner.task != "classification" or learner._binary:
        return None
    counts_y = learner._counts
    complete = learner._complete
    admit = learner.admit
    slow = learner.learn_one
    members = _PoolMembers()

    def learn(xc: dict[str, float], y: Any) -> None:
        if y is None or y not in counts_y:
            slow(xc, y, cleaned=True)
            return
        counts_y[y] += 1
        pool.learn_one(complete(admit(xc), True), y, members)

    return learn


class _FastLearn:
    """The fast ``learn_one`` of one learning learner, rebuilt when it changes model, classes or identity."""

    __slots__ = ("fn", "learner", "model", "n_classes")

    def __init__(self) -> None:
        self.learner: Any = None
        self.model: Any = None
        self.n_classes = -1
        self.fn: Callable[[dict[str, float], Any], None] | None = None

    def learn(self, learner: Any, xc: dict[str, float], y: Any) -> None:
        model, n_classes = learner._model, len(getattr(learner, "_classes", ()))
        if learner is not self.learner or model is not self.model or n_classes != self.n_classes:
            self.learner, self.model, self.n_classes, self.fn = learner, model, n_classes, None
            try:
                self.fn = _fast_binary_lr_learn(learner) or _fast_pool_learn(learner)
            except Exception:  # an unexpected model shape: learned by the learner itself
                self.fn = None
        if self.fn is not None:
            self.fn(xc, y)
        else:
            learner.learn_one(xc, y, cleaned=True)


class _Fast:
    """The fast predictor of one learning learner, rebuilt when it changes model, classes or identity.

    The learner and its model are held (not their ids): a freed object's id may be reused by its replacement.
    """

    __slots__ = ("fn", "learner", "model", "n_classes")

    def __init__(self) -> None:
        self.learner: Any = None
        self.model: Any = None
        self.n_classes = -1
        self.fn: Callable[[dict[str, float]], Any] | None = None

    def predict(self, learner: Any, xc: dict[str, float]) -> Any:
        model, n_classes = learner._model, len(getattr(learner, "_classes", ()))
        if learner is not self.learner or model is not self.model or n_classes != self.n_classes:
            self.learner, self.model, self.n_classes, self.fn = learner, model, n_classes, None
            try:
                self.fn = _fast_binary_lr(learner) or learning_tree_predictor(learner)
            except Exception:  # an unexpected model shape: predicted by the learner itself
                self.fn = None
        return self.fn(xc) if self.fn is not None else learner.predict_one(xc, cleaned=True)
