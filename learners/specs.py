"""Learners by name: ``build_learner(LearnerSpec("hoeffding_tree", {"grace_period": 100}))``.

Every kind is wrapped in :class:`Learner`, which gives all of them the same behaviour: the feature policy of
:mod:`learners.features` (missing/unseen/string features), label mapping for binary-only estimators, outputs that are
never NaN or infinite, ``clone()`` for a fresh copy with the same spec, and compact pickles.

>>> from driftline.config import LearnerSpec
>>> model = build_learner(LearnerSpec("gaussian_nb"))
>>> for x, y in [({"a": 1.0}, "up"), ({"a": -1.0}, "down")] * 5:
...     model.learn_one(x, y)
>>> model.predict_one({"a": 0.9, "b": None})
'up'
"""

from __future__ import annotations

import copy
import inspect
import math
import pickle
from collections.abc import Callable
from typing import Any, cast

from river import base as river_base

from driftline.config import LearnerSpec
from driftline.errors import ArtifactError, LearnerError
from driftline.util import yaml_number_hint
from learners.features import (
    MAX_CATEGORIES,
    MAX_KEYS,
    MAX_TREE_KEYS,
    MAX_VALUES,
    FeatureScaler,
    Quadratic,
    admit,
    clean_features,
    complete_indicators,
    share_distribution_rngs,
)
from learners.flat_ebst import register as _register_flat_ebst
from learners.window import WindowRefit

_register_flat_ebst()  # every pickler writes River's E-BSTs flat (learners/flat_ebst.py)

TASKS = ("classification", "regression")
MULTICLASS = ("auto", "binary", "ovr", "softmax")  # logistic_regression's params.multiclass
PRODUCTS = (
    "centred",
    "raw",
)  # logistic_regression's params.products (with degree 2): of scaled or raw features


# Parameters that must be above 0 when given (River takes any value without a word: a grace_period of -5, 0 trees
# in a forest, a learning rate of -1, which learned the concept backwards and served 0.20 accuracy; session 44).
POSITIVE = (
    "grace_period",
    "n_models",
    "lr",
    "delta",
    "max_depth",
    "max_size",
    "memory_estimate_period",
    "lambda_value",
)
#: Parameters that must not be negative: a negative regularisation or learning rate learns away from the data
#: (``l2: -5`` served 0.80 accuracy on SEA where the default serves 0.98; session 45).
NON_NEGATIVE = ("l1", "l2", "intercept_lr", "clip_gradient", "tau", "nb_threshold")
#: Shares, above 0 and at most 1: River's trees take ``min_branch_fraction: 2`` without a word, and then no split can
#: ever qualify (Agrawal, 8,000 labels: 1 node and 0.835 accuracy, against 9 nodes and 0.975; session 45); a
#: ``max_share_to_split`` above 1 means nothing.
SHARES = ("max_share_to_split", "min_branch_fraction")
#: Upper bounds of the parameters that size what a model builds or repeats for every label, checked before anything
#: is built. Why: River takes any size, and ``n_models: 100000000`` made `config validate` (and a worker's start)
#: hang building the forest (session 45). The bounds leave ample room: a forest of 1,000 trees already takes ~9 s
#: to learn `config validate`'s 200 made-up labels and predicts far slower than ``guard.max_predict_latency_ms``;
#: ``lambda_value`` past ~700 is no longer Poisson (River's sampler underflows) and each label is learned with
#: that weight by every tree.
MAX_SIZES = {"n_models": 1000, "lambda_value": 100}


def _check(
    cls: Any, params: dict[str, Any], kind: str, allowed_extra: tuple[str, ...] = ()
) -> dict[str, Any]:
    """Reject parameters ``cls`` does not take, naming the parameter and the valid ones, and values it would take
    without a word and fail on later: text or a non-finite number where the default is a number (a grace_period of
    "abc" passed `config validate` and ended replay and the trainer at the first split attempt with a TypeError),
    a number at or below 0 for a parameter of :data:`POSITIVE`, below 0 for one of :data:`NON_NEGATIVE`, outside
    (0, 1] for one of :data:`SHARES`, and above its bound for one of :data:`MAX_SIZES`."""
    signature = inspect.signature(cls).parameters
    valid = set(signature) | set(allowed_extra)
    for key, value in params.items():
        if key not in valid:
            raise LearnerError(
                f"learner {kind!r}: unknown parameter {key!r}; valid: {', '.join(sorted(valid))}"
            )
        default = signature[key].default if key in signature else (0.1 if key == "lr" else None)
        numeric = isinstance(default, (int, float)) and not isinstance(default, bool)
        if value is None and not numeric:
            continue
        if numeric or key in POSITIVE:
            number = isinstance(value, (int, float)) and not isinstance(value, bool)
            if not number or not math.isfinite(value):
                hint = yaml_number_hint(value)
                raise LearnerError(f"learner {kind!r}: {key} must be a finite number, got {value!r}{hint}")
            if key in POSITIVE and value <= 0:
                raise LearnerError(f"learner {kind!r}: {key} must be above 0, got {value!r}")
            if key in NON_NEGATIVE and value < 0:
                raise LearnerError(f"learner {kind!r}: {key} must be 0 or more, got {value!r}")
            if key in SHARES and not 0 < value <= 1:
                raise LearnerError(
                    f"learner {kind!r}: {key} is a share, above 0 and at most 1, got {value!r}"
                )
            if key in MAX_SIZES and value > MAX_SIZES[key]:
                raise LearnerError(
                    f"learner {kind!r}: {key} must be at most {MAX_SIZES[key]:,}, got {value!r} "
                    "(a model of that size is too slow to learn and to serve)"
                )
    return {k: v for k, v in params.items() if k not in allowed_extra}


def _construct(cls: Any, params: dict[str, Any], kind: str) -> Any:
    try:
        return cls(**params)
    except LearnerError:
        raise
    except (TypeError, ValueError) as exc:
        raise LearnerError(f"learner {kind!r}: bad parameters {params!r}: {exc}") from exc


def _linear_params(params: dict[str, Any]) -> dict[str, Any]:
    # `lr` is accepted as a plain number so YAML can set the SGD learning rate.
    from river import optim

    out = dict(params)
    if "lr" in out:
        out["optimizer"] = optim.SGD(float(out.pop("lr")))
    return out


def _logistic(params: dict[str, Any], task: str, seed: int) -> Any:
    from river import linear_model, multiclass

    mode = params.get("multiclass", "auto")
    if mode not in MULTICLASS:
        raise LearnerError(
            f"learner 'logistic_regression': multiclass must be {', '.join(MULTICLASS)}, got {mode!r}"
        )
    degree = params.get("degree", 1)
    if degree not in (1, 2):
        raise LearnerError(f"learner 'logistic_regression': degree must be 1 or 2, got {degree!r}")
    products = params.get("products", "centred")
    if products not in PRODUCTS:
        raise LearnerError(
            f"learner 'logistic_regression': products must be {', '.join(PRODUCTS)}, got {products!r}"
        )
    rest = {k: v for k, v in params.items() if k not in ("multiclass", "degree", "products")}
    cls = linear_model.SoftmaxRegression if mode == "softmax" else linear_model.LogisticRegression
    _check(cls, rest, "logistic_regression", ("lr",))
    est = _construct(cls, _linear_params(rest), "logistic_regression")
    if mode == "ovr":
        est = multiclass.OneVsRestClassifier(est)
    if degree == 2 and products == "raw":
        # Every pairwise product of the raw features, then scaled (River's PolynomialExtender(2) | StandardScaler).
        return Quadratic() | FeatureScaler() | est
    if degree == 2:
        # Every pairwise product of the scaled features (a quadratic boundary), scaled again for SGD.
        return FeatureScaler() | Quadratic() | FeatureScaler() | est
    return FeatureScaler() | est


def _to_one_vs_rest(pipeline: Any, classes: list[Any]) -> Any:
    """A binary scaler | LR pipeline as scaler | one-vs-rest LR, keeping what it learned (``multiclass: auto``).

    The binary model scores P(classes[1]); with its weights negated it scores P(classes[0]). Both become the
    one-vs-rest members of their class, so a third class costs nothing already learned.
    """
    from river import compose, multiclass

    steps = list(pipeline.steps.values())
    *front, positive = steps
    negative = copy.deepcopy(positive)
    for k in list(negative._weights):
        negative._weights[k] = -negative._weights[k]
    negative.intercept = -negative.intercept
    ovr = multiclass.OneVsRestClassifier(positive.clone())
    ovr.classifiers = {classes[0]: negative, classes[1]: positive}
    return compose.Pipeline(*front, ovr)


def _linear_regression(params: dict[str, Any], task: str, seed: int) -> Any:
    from river import linear_model

    _check(linear_model.LinearRegression, params, "linear_regression", ("lr",))
    est = _construct(linear_model.LinearRegression, _linear_params(params), "linear_regression")
    return FeatureScaler() | est


def _gaussian_nb(params: dict[str, Any], task: str, seed: int) -> Any:
    from river import naive_bayes

    return _construct(
        naive_bayes.GaussianNB, _check(naive_bayes.GaussianNB, params, "gaussian_nb"), "gaussian_nb"
    )


def _tree(kind: str, clf: str, reg: str, seeded: bool) -> Callable[[dict[str, Any], str, int], Any]:
    def build(params: dict[str, Any], task: str, seed: int) -> Any:
        from river import forest, tree

        module = forest if kind == "adaptive_random_forest" else tree
        cls = getattr(module, clf if task == "classification" else reg)
        if kind == "hoeffding_tree" and task == "classification":
            from learners.settled_tree import SettledHoeffdingTreeClassifier

            cls = SettledHoeffdingTreeClassifier  # River's, its new leaves settled first (issue 13)
        params = _check(cls, params, kind)
        # River prints a warning for an unknown option and uses its default: `leaf_prediction: zzz` passed
        # `config validate` and ran as 'nba' (session 45).
        ref = tree.HoeffdingTreeClassifier if task == "classification" else tree.HoeffdingTreeRegressor
        for key, attr in (
            ("split_criterion", "_VALID_SPLIT_CRITERIA"),
            ("leaf_prediction", "_VALID_LEAF_PREDICTION"),
        ):
            valid = getattr(ref, attr, None)
            if key in params and valid and params[key] not in valid:
                raise LearnerError(
                    f"learner {kind!r}: {key} must be one of {', '.join(valid)}, got {params[key]!r}"
                )
        if seeded and "seed" not in params:
            params = {**params, "seed": seed}
        return _construct(cls, params, kind)

    return build


#: The SGDClassifier losses with ``predict_proba``.
SGD_PROBA_LOSSES = ("log_loss", "modified_huber")


def _sklearn_sgd(params: dict[str, Any], task: str, seed: int) -> Any:
    from river import compat
    from sklearn import linear_model

    cls = linear_model.SGDClassifier if task == "classification" else linear_model.SGDRegressor
    rest = {k: v for k, v in params.items() if k != "classes"}
    _check(cls, rest, "sklearn_sgd")
    if task == "classification":
        rest.setdefault("loss", "log_loss")
        if rest["loss"] not in SGD_PROBA_LOSSES:
            # Taken until session 44: `config validate` said valid, then replay and the trainer ended on the first
            # label with sklearn's AttributeError (no predict_proba).
            raise LearnerError(
                f"learner 'sklearn_sgd': loss {rest['loss']!r} gives no class probabilities, which driftline "
                f"serves and judges by; use one of {', '.join(SGD_PROBA_LOSSES)}"
            )
        if not params.get("classes"):
            raise LearnerError("learner 'sklearn_sgd': parameter 'classes' (the list of labels) is required")
    rest.setdefault("random_state", seed)
    est = _construct(cls, rest, "sklearn_sgd")
    try:
        est._validate_params()  # scikit-learn checks its parameters only when it first fits
    except (TypeError, ValueError) as exc:
        raise LearnerError(f"learner 'sklearn_sgd': {exc}") from exc
    try:
        wrapped = compat.convert_sklearn_to_river(est, classes=params.get("classes"))
    except ValueError as exc:
        raise LearnerError(f"learner 'sklearn_sgd': {exc}") from exc
    return FeatureScaler() | _Aligned() | wrapped


def _window_refit(params: dict[str, Any], task: str, seed: int) -> Any:
    params = _check(WindowRefit, params, "window_refit")
    params.pop("task", None)
    return _construct(lambda **p: WindowRefit(task=task, **p), params, "window_refit")


def _one_vs_rest(params: dict[str, Any], task: str, seed: int) -> Any:
    from river import multiclass

    base = params.get("base", {"name": "logistic_regression"})
    if not isinstance(base, dict) or "name" not in base:
        raise LearnerError("learner 'one_vs_rest': parameter 'base' must be a mapping with a 'name'")
    extra = set(params) - {"base"}
    if extra:
        raise LearnerError(f"learner 'one_vs_rest': unknown parameter {sorted(extra)[0]!r}; valid: base")
    if base["name"] == "one_vs_rest":
        # Each level is one model per class of the level above (100 classes, three levels: 10^6 models), and a
        # YAML alias can make the nesting endless (RecursionError traceback from `config validate`; session 45).
        raise LearnerError("learner 'one_vs_rest': its base cannot itself be 'one_vs_rest'")
    inner = _build_raw(LearnerSpec(base["name"], dict(base.get("params", {}))), task, seed)
    return multiclass.OneVsRestClassifier(inner)


def _auto(params: dict[str, Any], task: str, seed: int) -> Any:
    from learners.pool import build_pool

    return build_pool(params, task, seed)


class _NothingLearned(ValueError):
    """A scikit-learn pipeline asked to predict before its first example (``Learner`` answers as untrained)."""


class _Aligned(river_base.Transformer):
    """Fixes the feature set for scikit-learn's fixed-width input: frozen at the first example, missing -> 0.0
    (the running mean after the scaler in front), unseen features dropped.

    Before the first example nothing reaches the wrapped estimator: River's wrapper fixes its feature names on the
    first event it sees, *predicted* ones too, so an untrained model (the v1 scorers serve) froze them on the first
    event scored and raised KeyError on every event with another one-hot key (and on learning one).
    """

    def __init__(self) -> None:
        self._names: list[str] | None = None

    def learn_one(self, x: dict[str, float]) -> None:  # type: ignore[override]
        if self._names is None:
            self._names = sorted(x)

    def transform_one(self, x: dict[str, float]) -> dict[str, float]:  # type: ignore[override]
        if self._names is None:
            raise _NothingLearned("nothing learned yet")
        return {n: x.get(n, 0.0) for n in self._names}


# The learner registry: kind -> (builder(params, task, seed) -> estimator, tasks it supports); README "Extending".
KINDS: dict[str, tuple[Callable[[dict[str, Any], str, int], Any], tuple[str, ...]]] = {
    "logistic_regression": (_logistic, ("classification",)),
    "linear_regression": (_linear_regression, ("regression",)),
    "gaussian_nb": (_gaussian_nb, ("classification",)),
    "hoeffding_tree": (
        _tree("hoeffding_tree", "HoeffdingTreeClassifier", "HoeffdingTreeRegressor", False),
        TASKS,
    ),
    "hoeffding_adaptive_tree": (
        _tree(
            "hoeffding_adaptive_tree",
            "HoeffdingAdaptiveTreeClassifier",
            "HoeffdingAdaptiveTreeRegressor",
            True,
        ),
        TASKS,
    ),
    "adaptive_random_forest": (_tree("adaptive_random_forest", "ARFClassifier", "ARFRegressor", True), TASKS),
    "sklearn_sgd": (_sklearn_sgd, TASKS),
    "window_refit": (_window_refit, TASKS),
    "one_vs_rest": (_one_vs_rest, ("classification",)),
    "auto": (_auto, TASKS),
}


def label_floor(spec: LearnerSpec, task: str) -> tuple[bool, str] | None:
    """What a learner of ``spec`` needs of its regression labels (:func:`learners.window.label_floor`): ``(strict,
    why)`` for labels above 0 (strict) or at least 0, or None; for ``auto``, its strictest member's."""
    if task != "regression" or not isinstance(spec.params, dict):
        return None
    if spec.name == "window_refit":
        from learners.window import label_floor as window_floor

        params = spec.params.get("params") or {}
        return window_floor(spec.params.get("estimator") or "ridge", params, task)
    if spec.name == "auto":
        members = spec.params.get("members")
        floors = [
            label_floor(LearnerSpec(m["name"], dict(m.get("params") or {})), task)
            for m in (members if isinstance(members, list) else [])
            if isinstance(m, dict) and "name" in m
        ]
        found = [f for f in floors if f is not None]
        return max(found, key=lambda f: f[0]) if found else None
    return None


def label_floors(specs: tuple[LearnerSpec, ...], task: str) -> tuple[tuple[str, bool, str], ...]:
    """The :func:`label_floor` of each of ``specs`` that has one, as ``(learner name, strict, why)``."""
    found = ((spec.name, label_floor(spec, task)) for spec in specs)
    return tuple((name, floor[0], floor[1]) for name, floor in found if floor is not None)


def refuse_label(
    specs: tuple[LearnerSpec, ...],
    task: str,
    label: Any,
    floors: tuple[tuple[str, bool, str], ...] | None = None,
) -> str | None:
    """Why a regression label cannot be learned by a learner of ``specs`` (the champion's and the challenger's),
    or None: a label below 0 (or at 0) where one needs labels at least (above) 0 (:func:`label_floor`).
    ``floors``: ``label_floors(specs, task)`` when the caller keeps it (the lifecycle, per label)."""
    if task != "regression" or isinstance(label, bool) or not isinstance(label, (int, float)):
        return None
    for name, strict, why in label_floors(specs, task) if floors is None else floors:
        if label < 0 or (strict and label <= 0):
            need = "above 0" if strict else "0 or more"
            return (
                f"refused label {label!r:.60}: learner {name!r} ({why}) learns only labels {need}: "
                "send counts or amounts of that sign, or choose another loss (squared_error takes any number)"
            )
    return None


#: The kinds driftline registers itself (README, "Extending", adds others to :data:`KINDS`).
BUILT_IN = frozenset(KINDS)


def _build_raw(spec: LearnerSpec, task: str, seed: int) -> Any:
    if task not in TASKS:
        raise LearnerError(f"unknown task {task!r}; known: {', '.join(TASKS)}")
    if spec.name not in KINDS:
        raise LearnerError(f"unknown learner {spec.name!r}; known: {', '.join(sorted(KINDS))}")
    builder, tasks = KINDS[spec.name]
    if task not in tasks:
        raise LearnerError(
            f"learner {spec.name!r} does not support task {task!r} (supports {', '.join(tasks)})"
        )
    try:
        model = builder(dict(spec.params), task, seed)
    except LearnerError:
        raise
    except (
        Exception
    ) as exc:  # a builder registered from outside: its bug was a bare traceback, naming nothing of ours
        raise LearnerError(f"learner {spec.name!r}: its builder failed: {type(exc).__name__}: {exc}") from exc
    # A learner registered from outside (README, "Extending") that lacks a method failed only when first used,
    # with an AttributeError traceback mid-stream (replay) or on every event (workers), after `config validate`
    # had said "valid": name what is missing here, where the spec is checked.
    needed = ("learn_one", "predict_one", *(("predict_proba_one",) if task == "classification" else ()))
    missing = [name for name in needed if not callable(getattr(model, name, None))]
    if missing:
        raise LearnerError(
            f"learner {spec.name!r} built a {type(model).__name__} without {', '.join(missing)}: "
            f"a {task} learner needs {', '.join(needed)}"
        )
    return model


#: Kinds that split on feature values: they are shown an absent one-hot indicator as 0.0 (see ``Learner``).
SPLITTING = ("hoeffding_tree", "hoeffding_adaptive_tree", "adaptive_random_forest")
#: Kinds whose estimators never hold a River distribution (scalers, linear models, one-vs-rest of them): pickling
#: them skips :func:`share_distribution_rngs`, whose walk over every object found nothing to rewire and was most of
#: a logistic regression's copy at each release (test_learners_copy_cost.py checks it finds nothing).
NO_DISTRIBUTIONS = ("logistic_regression", "linear_regression")
#: Kinds whose model is made of other ``Learner`` objects, each rewiring its own model when it is pickled: the walk
#: over the whole pool repeated the tree member's own walk and crossed every weight of the linear ones (430 of a
#: default ``auto`` release pickle's 1,720 us, and again for its copy, at every release).
SELF_REWIRING = ("auto",)
#: A classifier refuses more distinct non-integer float labels than this: the target is a number to predict.
MAX_FRACTIONAL_CLASSES = 50
#: The classes a classifier learns: a label of a new class past them is not learned (the trainer dead-letters it,
#: ``streams.watch.InputWatch.refuse_label``; ``driftline replay`` leaves it unlearned). Why 100, not the 1,000 of
#: session 27: a tree's and naive Bayes' prediction costs grow with the classes (10 features: ~12 and ~16 ms at
#: 1,000 classes, over ``guard.max_predict_latency_ms`` 5), and a class once learned stays in the model's lineage,
#: so a burst of one-off labels (an id sent as the label) had the guard reject every later candidate on latency:
#: the model never released again (session 44, docs/experiments/adv44.md). At 100: ~0.6 and ~1 ms.
MAX_MODEL_CLASSES = 100


def vocabulary_bounds(spec: LearnerSpec) -> tuple[int, int] | None:
    """``(max_keys, max_values)`` a learner of ``spec`` learns (:func:`learners.features.admit`), or None for a
    kind made of learners that bound themselves (``auto``: each member has its own).

    One rule for every kind, with bounds by what a key costs it: a linear model ``MAX_KEYS`` keys and
    ``MAX_VALUES`` values per string feature (a ``degree: 2`` model's pairwise products are bounded by
    :class:`learners.features.Quadratic` itself, to ``MAX_KEYS`` as well); a tree ``MAX_TREE_KEYS`` keys and the
    ``MAX_CATEGORIES + 1`` values :func:`learners.features.complete_indicators` shows it anyway.
    """
    if spec.name in SELF_REWIRING:
        return None
    if spec.name in SPLITTING:
        return MAX_TREE_KEYS, MAX_CATEGORIES + 1
    return MAX_KEYS, MAX_VALUES


def _binary_only(spec: LearnerSpec, task: str) -> bool:
    return (
        task == "classification"
        and spec.name == "logistic_regression"
        and spec.params.get("multiclass", "auto") in ("binary", "auto")
    )


class Learner:
    """One model built from a :class:`LearnerSpec`, with River's ``predict_one``/``predict_proba_one``/``learn_one``.

    Outputs are never NaN: a classifier with nothing learned predicts ``None`` and an empty ``proba``; a regressor
    predicts the running mean of the targets (0.0 before any) whenever the estimator returns a non-finite value,
    and clips predictions to the observed target range widened by its width (linear models can explode on outliers).
    What it learns from is bounded (:func:`vocabulary_bounds`): keys past the bounds are not learned.
    """

    # The vocabulary (:func:`learners.features.admit`): keys learned, and values learned per string feature. None
    # for ``auto`` (its members bound themselves) and in a learner pickled before the bound existed (a trainer's
    # checkpoint): that one starts an empty vocabulary at its next label.
    _known: dict[Any, None] | None = None
    _values: dict[str, int] | None = None
    # Keys left unlearned because the vocabulary was full, over this learner's life (copies included); class-level
    # for a learner pickled before session 16.
    _refused = 0

    def __init__(self, spec: LearnerSpec, task: str = "classification", seed: int = 0) -> None:
        self.spec = spec
        self.task = task
        self.seed = seed
        self._model = _build_raw(spec, task, seed)
        self._binary = _binary_only(spec, task)
        self._classes: list[Any] = []  # labels in order of first appearance
        self._counts: dict[Any, int] = {}
        self._y_sum = 0.0
        self._y_n = 0
        self._y_lo = math.inf
        self._y_hi = -math.inf
        self._fractional = 0  # distinct labels that are non-integer floats (classification)
        # For a splitting kind: indicator names by feature and those completed on every event (features.py).
        self._indicators: dict[str, list[str]] | None = {} if spec.name in SPLITTING else None
        self._complete_names: tuple[str, ...] = ()
        if vocabulary_bounds(spec) is not None:
            self._known, self._values = {}, {}

    def admit(self, xc: dict[str, Any]) -> dict[str, Any]:
        """``xc`` without the keys this learner may not learn (:func:`learners.features.admit`): what every
        learning path (``learn_one`` and the trainer's shortcuts in :mod:`learners.live_models`) learns."""
        known = self._known
        if known is not None and known.keys() >= xc.keys():  # the usual example: every key already learned
            return xc
        bounds = vocabulary_bounds(self.spec)
        if bounds is None:  # ``auto``: its members bound themselves
            return xc
        if known is None:  # pickled before the vocabulary existed: starts one
            known = self._known = {}
            self._values = {}
        assert self._values is not None
        out = admit(xc, known, self._values, *bounds)
        if out is not xc:
            self._refused += len(xc) - len(out)
        return out

    def vocabulary(self) -> tuple[int, int]:
        """``(keys learned, keys refused)`` (:meth:`admit`); for ``auto``, the largest of its members' (they see
        the same examples; a tree member's bound is lower than a linear one's)."""
        if self._known is not None:
            return len(self._known), self._refused
        members = getattr(self._model, "members", None)
        if members:
            sizes = [m.vocabulary() for m in members]
            return max(k for k, _ in sizes), max(r for _, r in sizes)
        return 0, self._refused

    def _complete(self, xc: dict[str, Any], learn: bool) -> dict[str, Any]:
        """``xc`` as a splitting kind sees it: absent one-hot indicators as 0.0 (:func:`complete_indicators`)."""
        if self._indicators is None:
            return xc
        xc, self._complete_names = complete_indicators(xc, self._indicators, self._complete_names, learn)
        return xc

    @property
    def model(self) -> Any:
        """The wrapped River estimator or pipeline."""
        return self._model

    def clone(self) -> Learner:
        """A fresh, untrained learner with the same spec, task and seed."""
        return Learner(self.spec, self.task, self.seed)

    def copy(self) -> Learner:
        """A deep copy, learned state included (used to freeze a released snapshot).

        Through pickle rather than ``copy.deepcopy``: the same objects, about twice as fast for a trained pool
        (releases copy the model every few dozen labels). Our own bytes, in-process, so the plain unpickler.
        The pickle is the release artifact's (:func:`learners.safe_pickle.compact`), left for the copy's release
        (:func:`learners.safe_pickle.made`): a release pickled the model twice, for the copy and for the artifact.
        The copy is the same model; only its River distributions' generators, which no learner draws from (see
        safe_pickle), are seeded ones instead of copies of the shared one. A release inside ``learn_batch`` freezes
        a binary logistic regression with :func:`learners.snapshot.snapshot` instead: the same pickle, unpickled
        only if something reads the snapshot's River objects.
        """
        from learners import safe_pickle

        try:
            raw = safe_pickle.compact(self)
        except ArtifactError:  # something unpicklable: copy it in memory
            return copy.deepcopy(self)
        clone = cast(Learner, pickle.loads(raw))
        safe_pickle.made(clone, raw, clone.learned_mark())
        return clone

    def learned_mark(self) -> tuple[int, int, int]:
        """Changes whenever this learner learns a label (every learning path counts it) or changes estimator."""
        return sum(self._counts.values()), self._y_n, id(self._model)

    def learn_one(self, x: dict[str, Any], y: Any, *, cleaned: bool = False) -> None:
        """Learn one labelled example; ``None`` or non-finite regression targets are ignored.

        ``cleaned=True`` says ``x`` already went through :func:`clean_features` (the trainer cleans each example
        once for its several predictions and learns).
        """
        if y is None:
            return
        xc = x if cleaned else clean_features(x)
        xc = self.admit(xc)
        if self.task == "regression":
            if isinstance(y, bool) or not isinstance(y, (int, float)) or not math.isfinite(y):
                return
            y = float(y)
            self._y_sum += y
            self._y_n += 1
            self._y_lo, self._y_hi = min(self._y_lo, y), max(self._y_hi, y)
            self._model.learn_one(self._complete(xc, True), y)
            return
        if y not in self._counts:
            if type(y) is float and not y.is_integer():
                self._fractional += 1
                if self._fractional > MAX_FRACTIONAL_CLASSES:
                    # A numeric target under the default task: every value is a new class, each costing a
                    # one-vs-rest model, so learning slows with their number and no answer is ever right.
                    raise LearnerError(
                        f"learner {self.spec.name!r} is a classifier but saw {self._fractional} distinct "
                        f"non-integer labels (such as {y!r}): the label looks like a number to predict; "
                        "set model.task to 'regression'"
                    )
            if (
                self._binary
                and len(self._classes) >= 2
                and self.spec.params.get("multiclass", "auto") == "auto"
            ):
                # multiclass: auto (the default) becomes one-vs-rest at the third class, keeping what it learned.
                self._model = _to_one_vs_rest(self._model, self._classes)
                self._binary = False
            elif self._binary and len(self._classes) >= 2:
                raise LearnerError(
                    f"learner 'logistic_regression' is binary but saw a third label {y!r}; "
                    "set params.multiclass to 'ovr' or 'softmax'"
                )
            self._classes.append(y)
            self._counts[y] = 0
        self._counts[y] += 1
        xc = self._complete(xc, True)
        if self._binary:
            self._model.learn_one(xc, len(self._classes) > 1 and y == self._classes[1])
        else:
            self._model.learn_one(xc, y)

    def predict_proba_one(self, x: dict[str, Any], *, cleaned: bool = False) -> dict[Any, float]:
        """Class probabilities (finite, summing to 1) or ``{}`` before any label was learned."""
        if self.task != "classification":
            raise LearnerError(f"learner {self.spec.name!r} is a regressor: no predict_proba_one")
        if not self._classes:
            return {}
        if len(self._classes) == 1:
            return {self._classes[0]: 1.0}
        try:
            raw = self._model.predict_proba_one(self._complete(x if cleaned else clean_features(x), False))
        except ArithmeticError:
            raw = {}
        if self._binary and raw:
            p = float(raw.get(True, 0.0))
            if 0.0 <= p <= 1.0:  # the usual case, already a distribution (NaN fails the test)
                return {self._classes[0]: 1.0 - p, self._classes[1]: p}
            raw = {self._classes[0]: 1.0 - p, self._classes[1]: p}
        proba = {c: float(p) for c, p in raw.items() if c in self._counts and math.isfinite(p) and p >= 0}
        total = sum(proba.values())
        if total <= 0:
            # Fall back to the label frequencies seen so far.
            n = sum(self._counts.values())
            return {c: k / n for c, k in self._counts.items()}
        return {c: p / total for c, p in proba.items()}

    def proba_from_wire(self, proba: dict[str, float]) -> dict[Any, float]:
        """Class probabilities as a Prediction carries them (keyed by ``str(label)``) keyed by the labels again."""
        return {c: proba[k] for c in self._classes if (k := str(c)) in proba}

    def predict_with_proba(self, x: dict[str, Any], *, cleaned: bool = False) -> tuple[Any, dict[Any, float]]:
        """Prediction and class probabilities in one pass (``{}`` probabilities for a regressor)."""
        if self.task != "classification":
            return self.predict_one(x, cleaned=cleaned), {}
        proba = self.predict_proba_one(x, cleaned=cleaned)
        if not proba:
            return None, proba
        # Ties broken by first appearance so the output is deterministic.
        return max(self._classes, key=lambda c: proba.get(c, -1.0)), proba

    def predict_one(self, x: dict[str, Any], *, cleaned: bool = False) -> Any:
        """The most likely label (classification) or a finite number (regression)."""
        if self.task == "classification":
            return self.predict_with_proba(x, cleaned=cleaned)[0]
        mean = self._y_sum / self._y_n if self._y_n else 0.0
        try:
            out = float(self._model.predict_one(self._complete(x if cleaned else clean_features(x), False)))
        except (TypeError, ValueError, ArithmeticError):
            return mean
        if not math.isfinite(out):
            return mean
        if self._y_n:
            width = max(self._y_hi - self._y_lo, 1e-9)
            out = min(max(out, self._y_lo - width), self._y_hi + width)
        return out

    def rewires_distributions(self) -> bool:
        """Whether pickling this learner points its model's River distributions at one shared generator
        (:func:`learners.features.share_distribution_rngs`, in ``__getstate__``)."""
        return self.spec.name not in NO_DISTRIBUTIONS and self.spec.name not in SELF_REWIRING

    def __getstate__(self) -> dict[str, Any]:
        from learners import safe_pickle

        # safe_pickle.compact writes the shared generator itself for the learner it pickles (the same bytes).
        if self.rewires_distributions() and not safe_pickle.sharing(self):
            share_distribution_rngs(self._model)
        return self.__dict__.copy()

    def __setstate__(self, state: dict[str, Any]) -> None:  # a __dict__ update, as the allow-list's note says
        self.__dict__.update(state)

    def __repr__(self) -> str:
        return f"Learner({self.spec.name!r}, params={self.spec.params!r}, task={self.task!r})"


def build_learner(spec: LearnerSpec, task: str = "classification", seed: int = 0) -> Learner:
    """Build a :class:`Learner` from a spec; :class:`LearnerError` names an unknown kind or a bad parameter."""
    return Learner(spec, task, seed)
