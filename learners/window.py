"""A learner that refits a scikit-learn estimator on the last N labelled examples every k examples.

Useful when the concept moves faster than an incremental model adapts, and as a way to run any batch
scikit-learn estimator on a stream. Between refits the last fitted estimator serves.
"""

from __future__ import annotations

import collections
import copy
import importlib
import math
from typing import Any

import numpy as np

from driftline.errors import LearnerError

# name -> (module, classifier class, regressor class, scale features first)
ESTIMATORS: dict[str, tuple[str, str | None, str | None, bool]] = {
    "logistic_regression": ("sklearn.linear_model", "LogisticRegression", None, True),
    "linear_regression": ("sklearn.linear_model", None, "LinearRegression", True),
    "ridge": ("sklearn.linear_model", "RidgeClassifier", "Ridge", True),
    "random_forest": ("sklearn.ensemble", "RandomForestClassifier", "RandomForestRegressor", False),
    "extra_trees": ("sklearn.ensemble", "ExtraTreesClassifier", "ExtraTreesRegressor", False),
    "hist_gradient_boosting": (
        "sklearn.ensemble",
        "HistGradientBoostingClassifier",
        "HistGradientBoostingRegressor",
        False,
    ),
    "decision_tree": ("sklearn.tree", "DecisionTreeClassifier", "DecisionTreeRegressor", False),
    "knn": ("sklearn.neighbors", "KNeighborsClassifier", "KNeighborsRegressor", True),
}


#: The most examples a window holds. Why a bound: each example is kept (and travels in every release's artifact),
#: and a refit reads them all; ``window: 100000000000`` was taken without a word (session 45).
MAX_WINDOW = 100_000
#: Upper bounds of the scikit-learn parameters that size a refit, checked before anything is built or fitted.
#: Why: ``n_estimators: 100000000`` made `config validate` (which refits a copy on made-up labels) and a worker's
#: start hang (session 45). A forest of 1,000 trees already takes ~2 s to pass that check.
MAX_ESTIMATOR_SIZES = {"n_estimators": 1000, "max_iter": 10_000}


def make_sklearn(name: str, params: dict[str, Any], task: str) -> Any:
    """Build a scikit-learn estimator by registered name, with a clear error for unknown names or params."""
    if name not in ESTIMATORS:
        raise LearnerError(
            f"window_refit: unknown estimator {name!r}; known: {', '.join(sorted(ESTIMATORS))}"
        )
    module, clf, reg, scale = ESTIMATORS[name]
    cls_name = clf if task == "classification" else reg
    if cls_name is None:
        raise LearnerError(f"window_refit: estimator {name!r} does not support task {task!r}")
    cls = getattr(importlib.import_module(module), cls_name)
    valid = set(cls().get_params())
    for key in params:
        if key not in valid:
            raise LearnerError(
                f"window_refit: {cls_name} has no parameter {key!r}; valid: {', '.join(sorted(valid))}"
            )
    for key, limit in MAX_ESTIMATOR_SIZES.items():
        value = params.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value > limit:
            raise LearnerError(
                f"window_refit: {cls_name}'s {key} must be at most {limit:,}, got {value!r} "
                "(each refit would take too long)"
            )
    if cls_name == "LogisticRegression":
        # lbfgs' default 100 iterations often stops short on windows of raw, correlated (or squared) features.
        params = {"max_iter": 1000, **params}
    try:
        est = cls(**params)
        # scikit-learn checks its parameters only when it first fits: knn's n_neighbors 0 passed `config validate`
        # and ended replay and the trainer at the first refit (session 44).
        est._validate_params()
    except (TypeError, ValueError) as exc:
        raise LearnerError(f"window_refit: bad parameters for {cls_name}: {exc}") from exc
    if scale:
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        return make_pipeline(StandardScaler(), est)
    return est


def label_floor(estimator: str | None, params: dict[str, Any], task: str) -> tuple[bool, str] | None:
    """What a regression estimator needs of its labels: ``(strict, why)`` for labels above 0 (strict) or at least 0,
    or None for any finite label. A Poisson loss or criterion needs y >= 0, a gamma loss y > 0: scikit-learn
    refuses the whole refit otherwise, and one negative label failed every refit while it stayed in the window."""
    if task != "regression" or not isinstance(params, dict):
        return None
    if estimator == "hist_gradient_boosting" and params.get("loss") == "gamma":
        return True, "hist_gradient_boosting's gamma loss"
    if estimator == "hist_gradient_boosting" and params.get("loss") == "poisson":
        return False, "hist_gradient_boosting's poisson loss"
    if (
        estimator in ("random_forest", "extra_trees", "decision_tree")
        and params.get("criterion") == "poisson"
    ):
        return False, f"{estimator}'s poisson criterion"
    return None


class WindowRefit:
    """Refit ``estimator`` (in ``ESTIMATORS``; default by task) on the last ``window`` examples every ``every``.

    ``degree=2`` adds every pairwise product of features (a quadratic boundary for the linear estimators).
    Features missing from an example are filled with the window mean of that feature; features never seen in the
    window are ignored. Before the first fit (or while the window holds a single class) it predicts the most
    frequent label of the window.
    """

    def __init__(
        self,
        estimator: str | None = None,
        params: dict[str, Any] | None = None,
        window: int = 1000,
        every: int = 100,
        task: str = "classification",
        degree: int = 1,
    ) -> None:
        if window < 2 or every < 1:
            raise LearnerError(f"window_refit: window must be >= 2 and every >= 1, got {window}, {every}")
        if window > MAX_WINDOW:
            raise LearnerError(
                f"window_refit: window must be at most {MAX_WINDOW:,}, got {window!r} (every example in it is kept, "
                "refitted on and carried in each release)"
            )
        if every > window:
            # A refit every 10^12 labels fitted the first 10 examples and served that fit for good (SEA: 0.89
            # accuracy where the default window serves 0.98; session 45).
            raise LearnerError(
                f"window_refit: every must be at most window ({window}), got {every!r}: the labels between "
                "would never be refitted on"
            )
        if degree not in (1, 2):
            raise LearnerError(f"window_refit: degree must be 1 or 2, got {degree!r}")
        self.degree = degree
        # Default: a scaled logistic regression for classification, ridge for regression.
        self.estimator = estimator or ("logistic_regression" if task == "classification" else "ridge")
        self.params = dict(params or {})
        self.window = window
        self.every = every
        self.task = task
        make_sklearn(self.estimator, self.params, task)  # validate now, not at the first refit
        # knn answers from its n_neighbors nearest examples: fitted on fewer, every prediction raised ValueError
        # (replay ended at the first event after the first refit; session 45). It waits for that many instead.
        self._min_fit = self.params.get("n_neighbors", 5) if self.estimator == "knn" else 0
        if isinstance(self._min_fit, int) and self._min_fit > window:
            raise LearnerError(
                f"window_refit: knn's n_neighbors must be at most window ({window}), got {self._min_fit}"
            )
        self._buffer: collections.deque[tuple[dict[str, float], Any]] = collections.deque(maxlen=window)
        self._since_fit = 0
        self._fitted: Any = None
        self._names: list[str] = []
        self._means: np.ndarray = np.zeros(0)
        self._fallback: Any = None
        self._labels: list[Any] = []
        self._linear: tuple[np.ndarray, np.ndarray] | None = None

    def __deepcopy__(self, memo: dict[int, Any]) -> WindowRefit:
        # Cheap snapshot: buffered examples are never mutated and a refit replaces the fitted estimator rather
        # than changing it, so both may be shared; only the buffer container must be new.
        twin = copy.copy(self)
        twin._buffer = collections.deque(self._buffer, maxlen=self.window)
        return twin

    def clone(self) -> WindowRefit:
        return WindowRefit(self.estimator, self.params, self.window, self.every, self.task, self.degree)

    def _row(self, x: dict[str, float]) -> np.ndarray:
        row = np.array([x.get(n, m) for n, m in zip(self._names, self._means, strict=True)], dtype=float)
        return _expand(row.reshape(1, -1), self.degree)[0]

    def _refit(self) -> None:
        names = sorted({k for x, _ in self._buffer for k in x})
        X = np.array([[x.get(n, math.nan) for n in names] for x, _ in self._buffer], dtype=float)
        means = np.nanmean(X, axis=0) if len(names) else np.zeros(0)
        means = np.where(np.isfinite(means), means, 0.0)
        X = _expand(np.where(np.isnan(X), means, X), self.degree)
        ys = [y for _, y in self._buffer]
        few = len(ys) < self.__dict__.get("_min_fit", 0)  # a window pickled before _min_fit: 0
        if self.task == "regression" and not any(ys) and label_floor(self.estimator, self.params, self.task):
            few = True  # a Poisson fit needs a label above 0: a window of zeros answers its mean, 0
        if self.task == "classification":
            counts = collections.Counter(ys)
            self._fallback = counts.most_common(1)[0][0]
            if len(counts) < 2 or not names or few:
                self._fitted = None
                return
        else:
            self._fallback = float(np.mean(ys))
            if not names or few:
                self._fitted = None
                return
        est = make_sklearn(self.estimator, self.params, self.task)
        if self.task == "classification":
            # scikit-learn rejects object arrays of mixed/int labels: fit on indices, map back on predict.
            self._labels = sorted(set(ys), key=repr)
            index = {c: i for i, c in enumerate(self._labels)}
            est.fit(X, np.array([index[y] for y in ys], dtype=int))
        else:
            est.fit(X, np.array(ys, dtype=float))
        self._fitted, self._names, self._means = est, names, means
        self._linear = _linear_form(est) if self.task == "classification" else None

    def learn_one(self, x: dict[str, float], y: Any) -> None:
        self._buffer.append((x, y))
        self._since_fit += 1
        if self._since_fit >= self.every or (self._fitted is None and len(self._buffer) >= 10):
            self._since_fit = 0
            self._refit()

    def predict_proba_one(self, x: dict[str, float]) -> dict[Any, float]:
        if self._fitted is None:
            return {} if self._fallback is None else {self._fallback: 1.0}
        if self._linear is not None:
            proba = _linear_proba(self._linear, self._row(x))
        elif not hasattr(self._fitted, "predict_proba"):
            return {self.predict_one(x): 1.0}
        else:
            proba = self._fitted.predict_proba(self._row(x).reshape(1, -1))[0]
        return {self._labels[int(c)]: float(p) for c, p in zip(self._fitted.classes_, proba, strict=True)}

    def predict_one(self, x: dict[str, float]) -> Any:
        if self._fitted is None:
            return self._fallback
        if self._linear is not None:
            proba = _linear_proba(self._linear, self._row(x))
            return self._labels[int(self._fitted.classes_[int(np.argmax(proba))])]
        out = self._fitted.predict(self._row(x).reshape(1, -1))[0]
        if self.task == "classification":
            return self._labels[int(out)]
        return float(out)


def _expand(X: np.ndarray, degree: int) -> np.ndarray:
    """Append all pairwise products (squares included) when ``degree`` is 2, in PolynomialFeatures order."""
    if degree == 1 or X.shape[1] == 0:
        return X
    i, j = np.triu_indices(X.shape[1])
    return np.hstack([X, X[:, i] * X[:, j]])


def _linear_form(est: Any) -> tuple[np.ndarray, np.ndarray] | None:
    """(weights, intercepts) on raw features for a scaled logistic regression, else None.

    Why: scikit-learn's per-call input validation costs about a millisecond, far more than the model itself;
    folding the scaler into the weights makes a single prediction a dot product.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline

    if not isinstance(est, Pipeline) or not isinstance(est[-1], LogisticRegression) or len(est) != 2:
        return None
    scaler, lr = est[0], est[-1]
    scale = np.where(scaler.scale_ == 0, 1.0, scaler.scale_)
    w = lr.coef_ / scale
    b = lr.intercept_ - (w * scaler.mean_).sum(axis=1)
    return w, b


def _linear_proba(form: tuple[np.ndarray, np.ndarray], row: np.ndarray) -> np.ndarray:
    w, b = form
    z = w @ row + b
    if len(z) == 1:  # binary: one score for classes_[1]
        p = 1.0 / (1.0 + np.exp(-np.clip(z[0], -50, 50)))
        return np.array([1.0 - p, p])
    e = np.exp(z - z.max())
    return e / e.sum()
