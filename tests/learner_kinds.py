"""Every supported learner kind, trained a little, for the pickle allow-list tests (tests/test_safe_pickle_allow.py,
tests/test_state_pickle_allow.py), and :func:`load_recording` to see which globals a pickle names.

The list follows learners/specs.py KINDS (every kind, every task it supports) and learners/window.py ESTIMATORS
(every scikit-learn estimator window_refit can refit), so a new kind or estimator shows up here by itself.
"""

from __future__ import annotations

import io
import pickle
import random
from collections.abc import Iterator
from typing import Any

from driftline.config import LearnerSpec
from learners.specs import KINDS, build_learner
from learners.window import ESTIMATORS

# Parameters that exercise more of a kind than its defaults (other classes inside the pickle).
EXTRA_PARAMS: dict[str, list[dict[str, Any]]] = {
    "logistic_regression": [{}, {"multiclass": "ovr"}, {"multiclass": "softmax"}, {"lr": 0.05}],
    "linear_regression": [{}, {"lr": 0.01}],
    "sklearn_sgd": [
        {"classes": [0, 1, 2]},
        {"classes": [0, 1, 2], "loss": "modified_huber"},  # the other loss with probabilities
    ],
    "one_vs_rest": [
        {},
        {"base": {"name": "gaussian_nb"}},
        {"base": {"name": "hoeffding_tree"}},
        {"base": {"name": "logistic_regression", "params": {"lr": 0.05}}},
    ],
    "hoeffding_tree": [
        {"grace_period": 30},
        {"grace_period": 30, "leaf_prediction": "nb"},
        {"grace_period": 30, "leaf_prediction": "mc"},
    ],
    "hoeffding_adaptive_tree": [{"grace_period": 30}],
    "adaptive_random_forest": [
        {"n_models": 3, "grace_period": 30},
        {"n_models": 2, "grace_period": 30, "leaf_prediction": "mc"},
        {"n_models": 2, "grace_period": 30, "leaf_prediction": "nb"},
    ],
}
# The regression parameters of kinds whose leaves differ by task (the classification ones above do not apply).
REGRESSION_PARAMS: dict[str, list[dict[str, Any]]] = {
    "hoeffding_tree": [
        {"grace_period": 30},
        {"grace_period": 30, "leaf_prediction": "mean"},
        {"grace_period": 30, "leaf_prediction": "model"},
    ],
    "hoeffding_adaptive_tree": [
        {"grace_period": 30},
        {"grace_period": 30, "leaf_prediction": "mean"},
        {"grace_period": 30, "leaf_prediction": "model"},
    ],
    "adaptive_random_forest": [
        {"n_models": 3, "grace_period": 30},
        {"n_models": 2, "grace_period": 30, "leaf_prediction": "mean"},
        {"n_models": 2, "grace_period": 30, "leaf_prediction": "model"},
    ],
    "sklearn_sgd": [{}],
}
# Nominal splits (an int feature named nominal, multiway or binary), added to each tree kind's parameters; trained
# on labels that follow that feature, so the trees split on it.
NOMINAL_PARAMS: list[dict[str, Any]] = [
    {"grace_period": 10, "nominal_attributes": ["n"]},
    {"grace_period": 10, "nominal_attributes": ["n"], "binary_split": True},
]
NOMINAL_KINDS = ("hoeffding_tree", "hoeffding_adaptive_tree", "adaptive_random_forest")
# window_refit estimators' parameters that pickle other classes, beyond each estimator's small defaults below
# (degree 1 only): (estimator, task, params).
WINDOW_PARAMS: list[tuple[str, str, dict[str, Any]]] = [
    ("knn", "classification", {"metric": "manhattan"}),
    ("knn", "classification", {"metric": "chebyshev"}),
    ("knn", "classification", {"metric": "minkowski", "p": 3}),
    ("knn", "regression", {"algorithm": "ball_tree"}),
    *(
        ("hist_gradient_boosting", "regression", {"max_iter": 5, "loss": loss, **extra})
        for loss, extra in (
            ("absolute_error", {}),
            ("poisson", {}),
            ("gamma", {}),
            ("quantile", {"quantile": 0.5}),
        )
    ),
]


def specs(extras: bool = True) -> Iterator[tuple[str, LearnerSpec, str]]:
    """(id, spec, task) for every kind and task, and for window_refit every estimator and task (and, with
    ``extras``, the :data:`WINDOW_PARAMS` and :data:`NOMINAL_PARAMS` variants: model classes only, trained on
    :func:`examples`; a Poisson or gamma loss cannot learn a trainer's drifting stream, whose targets go
    negative)."""
    for kind, (_, tasks) in sorted(KINDS.items()):
        for task in tasks:
            if kind == "window_refit":
                for est, (_, clf, reg, _) in sorted(ESTIMATORS.items()):
                    if (clf if task == "classification" else reg) is None:
                        continue
                    # Few trees / iterations: the classes pickled are the same, the test runs in seconds.
                    small = {"n_estimators": 4} if est in ("random_forest", "extra_trees") else {}
                    if est == "hist_gradient_boosting":
                        small = {"max_iter": 5}
                    for degree in (1, 2):
                        params = {
                            "estimator": est,
                            "params": small,
                            "window": 60,
                            "every": 30,
                            "degree": degree,
                        }
                        yield f"{kind}-{est}-d{degree}-{task}", LearnerSpec(kind, params), task
                for i, (est, est_task, est_params) in enumerate(WINDOW_PARAMS):
                    if extras and est_task == task:
                        params = {"estimator": est, "params": est_params, "window": 60, "every": 30}
                        yield f"{kind}-{est}-extra{i}-{task}", LearnerSpec(kind, params), task
                continue
            params_list = EXTRA_PARAMS.get(kind, [{}])
            if task == "regression" and kind in REGRESSION_PARAMS:
                params_list = REGRESSION_PARAMS[kind]
            if extras and kind in NOMINAL_KINDS:
                params_list = [*params_list, *({**params_list[0], **nominal} for nominal in NOMINAL_PARAMS)]
            for i, params in enumerate(params_list):
                yield f"{kind}-{i}-{task}", LearnerSpec(kind, params), task


def examples(
    task: str, n: int = 300, seed: int = 1, classes: int = 3, nominal: bool = False
) -> list[tuple[dict[str, Any], Any]]:
    """Mixed features (floats, an int, a bool, a category, a missing value) and 2-3 classes or a number (with
    ``nominal``, following the int ``n``)."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        a, b = rng.gauss(0, 1), rng.uniform(-2, 2)
        x: dict[str, Any] = {"a": a, "b": b, "n": i % 7, "flag": i % 3 == 0, "cat": rng.choice("xyz")}
        if i % 11 == 0:
            x["sometimes"] = rng.random()
        y: Any = 3 * a - b
        if nominal:
            y = (i % 7) % classes if task == "classification" else 3.0 * (i % 7) + 0.1 * a
        elif task == "classification":
            y = (0 if a + b < -0.5 else 1 if a + b < 0.5 else 2) if classes == 3 else int(a + b > 0)
        out.append((x, y))
    return out


def class_counts(spec: LearnerSpec, task: str) -> tuple[int, ...]:
    """The label streams a kind is trained on: binary and three classes (a binary model can pickle other classes:
    window_refit's hist_gradient_boosting a binomial loss, refused by the allow-list until session 44), only
    binary for a binary-only logistic regression, one (ignored) for regression."""
    if task != "classification":
        return (0,)
    if spec.name == "logistic_regression" and "multiclass" not in spec.params:
        return (2,)
    return (2, 3)


def trained(spec: LearnerSpec, task: str, n: int = 300, classes: int | None = None) -> Any:
    """``spec`` built and trained on ``n`` examples (``classes``: of :func:`class_counts`, by default its last)."""
    learner = build_learner(spec, task, seed=3)
    # A Poisson or gamma loss takes positive targets only.
    positive = spec.name == "window_refit" and spec.params.get("params", {}).get("loss") in (
        "poisson",
        "gamma",
    )
    nominal = "nominal_attributes" in spec.params
    n = max(n, 1500) if nominal else n  # enough for every tree kind to split on the nominal feature both ways
    for x, y in examples(task, n, classes=classes or class_counts(spec, task)[-1], nominal=nominal):
        learner.learn_one(x, abs(y) + 0.1 if positive else y)
    return learner


class _Recorder(pickle.Unpickler):
    def __init__(self, data: bytes, seen: set[tuple[str, str]]) -> None:
        super().__init__(io.BytesIO(data))
        self.seen = seen

    def find_class(self, module: str, name: str) -> Any:
        self.seen.add((module, name))
        return super().find_class(module, name)


def load_recording(data: bytes, seen: set[tuple[str, str]]) -> Any:
    """Unpickle ``data`` plainly (our own fresh bytes only), adding every (module, name) global it resolves to
    ``seen``."""
    return _Recorder(data, seen).load()
