"""Sizes a config may hold: each bounded, refused naming the parameter before anything is built (session 45).

``n_models: 100000000`` (a forest), ``n_estimators: 100000000`` (a window_refit forest), 3,000 ``auto`` members and
ten lines of YAML aliases expanding to 10^9 values each made `driftline config validate` (and a worker's start) hang;
``window`` and ``every`` of any size, ``lambda_value: 0`` (a forest that never learns), ``l2: -5`` (0.80 on SEA where
the default serves 0.98) and knn's ``n_neighbors: 50`` (every prediction raised until the window held 50) were taken
without a word. docs/experiments/adv45.md.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from driftline.config import LearnerSpec
from driftline.errors import LearnerError
from learners.specs import build_learner
from tests.test_config_validate_cli import validate


@pytest.mark.parametrize(
    ("name", "params", "message"),
    [
        ("adaptive_random_forest", {"n_models": 10**8}, "n_models must be at most 1,000, got 100000000"),
        ("adaptive_random_forest", {"lambda_value": 0}, "lambda_value must be above 0"),
        ("adaptive_random_forest", {"lambda_value": 10**9}, "lambda_value must be at most 100"),
        ("logistic_regression", {"l2": -5}, "l2 must be 0 or more, got -5"),
        ("linear_regression", {"intercept_lr": -1}, "intercept_lr must be 0 or more"),
        (
            "window_refit",
            {"estimator": "random_forest", "params": {"n_estimators": 10**8}},
            "RandomForestClassifier's n_estimators must be at most 1,000",
        ),
        (
            "window_refit",
            {"estimator": "hist_gradient_boosting", "params": {"max_iter": 10**8}},
            "max_iter must be at most 10,000",
        ),
        ("window_refit", {"window": 10**11}, "window must be at most 100,000"),
        ("window_refit", {"every": 10**12}, r"every must be at most window \(1000\)"),
        (
            "window_refit",
            {"estimator": "knn", "params": {"n_neighbors": 2000}},
            "n_neighbors must be at most",
        ),
        ("auto", {"members": [{"name": "gaussian_nb"}] * 3000}, "at most 16 members, got 3,000"),
        (
            "hoeffding_tree",
            {"leaf_prediction": "zzz"},
            "leaf_prediction must be one of mc, nb, nba, got 'zzz'",
        ),
        ("adaptive_random_forest", {"split_criterion": "zzz"}, "split_criterion must be one of gini"),
        ("linear_regression", {"l2": -1}, "l2 must be 0 or more"),
        ("hoeffding_tree", {"tau": -1}, "tau must be 0 or more"),
        ("hoeffding_tree", {"nb_threshold": -5}, "nb_threshold must be 0 or more"),
        (
            "hoeffding_tree",
            {"min_branch_fraction": 2},
            r"min_branch_fraction is a share, above 0 and at most 1",
        ),
        ("hoeffding_adaptive_tree", {"max_share_to_split": 5}, "max_share_to_split is a share"),
        ("hoeffding_tree", {"max_share_to_split": 0}, "max_share_to_split is a share"),
        (
            "one_vs_rest",
            {"base": {"name": "one_vs_rest", "params": {"base": {"name": "logistic_regression"}}}},
            "cannot itself be 'one_vs_rest'",
        ),
    ],
)
def test_a_size_past_its_bound_is_refused_naming_it(name: str, params: dict, message: str) -> None:
    task = "regression" if name == "linear_regression" else "classification"
    with pytest.raises(LearnerError, match=message):
        build_learner(LearnerSpec(name, params), task)


def test_the_bounds_leave_room_for_real_use() -> None:
    build_learner(LearnerSpec("adaptive_random_forest", {"n_models": 1000, "lambda_value": 100}))
    build_learner(LearnerSpec("window_refit", {"window": 100_000, "every": 100_000}))
    build_learner(LearnerSpec("window_refit", {"estimator": "extra_trees", "params": {"n_estimators": 1000}}))
    build_learner(LearnerSpec("auto", {"members": [{"name": "gaussian_nb"}] * 16}))
    build_learner(
        LearnerSpec("hoeffding_tree", {"tau": 0, "min_branch_fraction": 1, "max_share_to_split": 1})
    )


def test_knn_waits_for_n_neighbors_examples_before_its_first_fit() -> None:
    model = build_learner(LearnerSpec("window_refit", {"estimator": "knn", "params": {"n_neighbors": 50}}))
    for k in range(60):
        model.learn_one({"a": k / 60}, k % 2)
        model.predict_one({"a": 0.5})  # raised ValueError from the 10th example to the 110th
    assert model.model._fitted is not None


def _laughs() -> str:
    lines = ["model:", "  learner:", "    name: hoeffding_tree", "    params:"]
    for i in range(9):
        value = "1" if i == 0 else f"*x{i - 1}"
        lines.append(f"      x{i}: &x{i} {{" + ", ".join(f"{k}: {value}" for k in "abcdefghij") + "}")
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "model:\n  learner: {name: adaptive_random_forest, params: {n_models: 100000000}}\n",
            "model.learner: learner 'adaptive_random_forest': n_models must be at most 1,000",
        ),
        (_laughs(), "more than 100,000 values once its aliases (*name) are expanded"),
        (
            "model:\n  learner: &a {name: one_vs_rest, params: {base: *a}}\n",
            "an alias (*name) stands inside the mapping or list it names",
        ),
        (
            "model:\n  learner: {name: logistic_regression, params: {loss: x}}\n",
            "model.learner: learner 'logistic_regression' cannot learn or answer with these parameters",
        ),
    ],
)
def test_config_validate_refuses_at_once_naming_the_field(tmp_path: Path, text: str, message: str) -> None:
    proc = validate(tmp_path, text)
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert message in proc.stderr and "Traceback" not in proc.stderr, proc.stderr


@pytest.mark.parametrize(
    ("name", "params", "message"),
    [
        ("adwin", {"max_buckets": 10**9}, "adwin max_buckets must be at most 1,000"),
        ("kswin", {"window_size": 10**9}, "kswin window_size must be at most 100,000"),
        ("fhddm", {"sliding_window_size": 10**9}, "fhddm sliding_window_size must be at most 100,000"),
    ],
)
def test_a_detector_size_past_its_bound_is_refused_before_it_is_built(
    name: str, params: dict, message: str
) -> None:
    """ADWIN with max_buckets 10^9 took 22 GB at its construction, and the OOM killer ended `config validate`; a
    live `set drift.error_detector_params=...` runs the same check in the trainer (session 45)."""
    import dataclasses

    from driftline.config import DriftConfig
    from driftline.errors import ConfigError
    from learners.drift import check_drift_config

    config = dataclasses.replace(DriftConfig(), error_detector=name, error_detector_params=params)
    with pytest.raises(ConfigError, match=message):
        check_drift_config(config)
    check_drift_config(dataclasses.replace(config, error_detector_params={}))


def test_a_member_that_learns_only_its_given_classes_still_passes_the_learning_check(tmp_path: Path) -> None:
    """The made-up labels of the check are the classes an sklearn_sgd gives, wherever it sits (an auto member)."""
    text = (
        "model:\n  learner: {name: auto, params: {members: [{name: logistic_regression}, "
        "{name: sklearn_sgd, params: {classes: [a, b]}}]}}\n"
    )
    proc = validate(tmp_path, text)
    assert proc.returncode == 0, (proc.stdout, proc.stderr)
