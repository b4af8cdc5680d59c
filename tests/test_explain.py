"""Explanations (pure): per-feature weights and their changes, prediction contributions, release explanations,
and ``models diff`` over signed releases (no broker: the releases are built in-process)."""

from __future__ import annotations

import doctest
import math
import random
from pathlib import Path
from typing import Any

import pytest

import learners.explain
from driftline.config import DriftConfig, GuardConfig, LearnerSpec
from driftline.errors import ArtifactError, SecurityError
from driftline.settings import load_settings
from learners.artifacts import build_release
from learners.explain import explain_one, feature_weights, release_explanation, weight_changes
from learners.lifecycle import ModelLifecycle, Release
from learners.specs import build_learner
from streams.commands.models_diff import render
from streams.model_diff import diff_releases

KEY = "d" * 32


def trained(spec: str, task: str, n: int, weight_b: float = 0.0, seed: int = 0) -> Any:
    """``a`` decides the label; ``b`` matters with ``weight_b``; ``c`` is noise."""
    params = {"grace_period": 50} if "tree" in spec or "forest" in spec else {}
    model = build_learner(LearnerSpec(spec, params), task, seed)
    rng = random.Random(seed)
    for _ in range(n):
        x = {"a": rng.uniform(-1, 1), "b": rng.uniform(-1, 1), "c": rng.uniform(-1, 1)}
        score = x["a"] + weight_b * x["b"]
        model.learn_one(x, score > 0 if task == "classification" else 3 * score)
    return model


def test_doctests() -> None:
    assert doctest.testmod(learners.explain).failed == 0


@pytest.mark.parametrize(
    ("spec", "task", "method"),
    [
        ("logistic_regression", "classification", "linear_contribution"),
        ("linear_regression", "regression", "linear_contribution"),
        ("hoeffding_tree", "classification", "saabas_path"),
        ("hoeffding_tree", "regression", "saabas_path"),
        ("adaptive_random_forest", "classification", "saabas_path"),
    ],
)
def test_the_deciding_feature_dominates_weights_and_contributions(spec: str, task: str, method: str) -> None:
    model = trained(spec, task, 3000)
    name, weights = feature_weights(model)
    assert name == method
    assert max(weights, key=lambda f: abs(weights[f])) == "a", weights
    name, contrib = explain_one(model, {"a": 0.9, "b": 0.05, "c": -0.05})
    assert name == method and all(math.isfinite(v) for v in contrib.values())
    features = {k: v for k, v in contrib.items() if not k.startswith("_")}
    assert max(features, key=lambda f: abs(features[f])) == "a", contrib


@pytest.mark.parametrize("x", [{"a": 0.9, "b": 0.3, "c": 0.0}, {"a": -0.8, "b": 0.3, "c": 0.0}])
def test_linear_contributions_add_up_to_the_log_odds_of_the_predicted_class(x: dict[str, float]) -> None:
    model = trained("logistic_regression", "classification", 2000, weight_b=0.5)
    _, contrib = explain_one(model, x)
    proba = model.predict_proba_one(x)[model.predict_one(x)]
    assert sum(contrib.values()) == pytest.approx(math.log(proba / (1 - proba)), rel=1e-6)
    assert contrib["a"] > 0  # toward the predicted class, whichever it is


@pytest.mark.parametrize("spec", ["linear_regression", "auto"])
def test_linear_regression_contributions_add_up_to_the_prediction(spec: str) -> None:
    model = trained(spec, "regression", 2000)
    x = {"a": 0.9, "b": 0.3, "c": 0.0}
    method, contrib = explain_one(model, x)
    assert method == "linear_contribution"
    assert sum(contrib.values()) == pytest.approx(model.predict_one(x), rel=1e-6)
    assert contrib["a"] > 0  # the target rises with ``a``


def test_tree_contributions_add_up_to_the_leaf_estimate() -> None:
    model = trained("hoeffding_tree", "regression", 3000)
    x = {"a": 0.7, "b": -0.2, "c": 0.1}
    _, contrib = explain_one(model, x)
    leaf = model.model._root.traverse(x, until_leaf=True)
    assert sum(contrib.values()) == pytest.approx(leaf.stats.mean.get(), rel=1e-9)


def test_an_auto_pool_is_explained_by_its_leading_member() -> None:
    pool = trained("auto", "classification", 1000)
    leader = pool.model.members[pool.model.leader]
    x = {"a": 0.9, "b": 0.05, "c": -0.05}
    assert explain_one(pool, x) == explain_one(leader, x)
    assert feature_weights(pool) == feature_weights(leader) and feature_weights(pool)[0] != "none"


def test_a_model_without_an_explanation_method_says_none() -> None:
    model = trained("gaussian_nb", "classification", 200)
    assert explain_one(model, {"a": 1.0}) == ("none", {})
    assert weight_changes(model, model)["method"] == "none"


def test_weight_changes_rank_the_feature_that_moved_most() -> None:
    before = trained("logistic_regression", "classification", 2000, weight_b=0.0)
    after = trained("logistic_regression", "classification", 2000, weight_b=2.0)
    changes = weight_changes(before, after, top=2)
    assert changes["method"] == "linear_contribution" and changes["n_features"] == 3
    assert changes["top"][0]["feature"] == "b" and len(changes["top"]) == 2
    first = changes["top"][0]
    assert first["delta"] == pytest.approx(first["after"] - first["before"])


def test_release_explanation_of_an_incremental_release() -> None:
    lc = ModelLifecycle(
        "m", "classification", LearnerSpec("logistic_regression"), None, DriftConfig(), GuardConfig(),
        release_every=100,
    )  # fmt: skip
    first = lc.initial_release()
    assert release_explanation(first, lc)["changes"] is None  # nothing to compare the initial model with
    rng = random.Random(1)
    releases: list[Release] = []
    for i in range(600):
        x = {"a": rng.uniform(-1, 1), "b": rng.uniform(-1, 1)}
        releases += [
            e for e in lc.learn_one(x, int(x["a"] > 0), index=i, ts=1000 + i) if isinstance(e, Release)
        ]
    assert releases, "no incremental release in 600 examples"
    entry = release_explanation(releases[-1], lc)
    assert entry["reason"] == "incremental" and entry["parent"] == releases[-1].parent
    assert entry["changes"]["top"][0]["feature"] == "a"
    assert entry["data_range"]["first_ts"] == 1000 and entry["data_range"]["last_index"] <= 599
    assert entry["decision"]["outcome"] and "evidence" in entry["decision"]


def releases_for_diff(tmp_path: Path) -> tuple[list[dict[str, Any]], Any]:
    settings = load_settings(
        environ={}, overrides={"model.signing_key": KEY, "model.artifact_store": str(tmp_path / "a")}
    )
    old = trained("logistic_regression", "classification", 1500, weight_b=0.0)
    new = trained("logistic_regression", "classification", 1500, weight_b=-2.0)
    records = [
        build_release(m, name="default", version=v, parent=p, reason=r, metrics=met, key=KEY.encode(),
                      n_learned=n, data_range={"first_index": 0, "last_index": n - 1})
        for m, v, p, r, met, n in (
            (old, 3, 2, "incremental", {"accuracy": 0.7}, 1500),
            (new, 5, 3, "challenger", {"accuracy": 0.9}, 3000),
        )
    ]  # fmt: skip
    return records, settings


def test_models_diff_lists_weight_and_metric_changes(tmp_path: Path) -> None:
    records, settings = releases_for_diff(tmp_path)
    diff = diff_releases(records, settings, "default", 3, 5)
    assert diff["weights"]["top"][0]["feature"] == "b"
    acc = next(m for m in diff["metrics"] if m["metric"] == "accuracy")
    assert acc["delta"] == pytest.approx(0.2)
    assert diff["b"]["data_range"]["last_index"] == 2999 and diff["b"]["reason"] == "challenger"
    text = render(diff)
    assert "v3 -> v5" in text and "accuracy" in text and "examples 0..2999" in text
    assert text.index("  b ") < text.index("  a ")  # the largest change first


def test_models_diff_refuses_a_tampered_or_unknown_release(tmp_path: Path) -> None:
    records, settings = releases_for_diff(tmp_path)
    with pytest.raises(ArtifactError, match=r"version 4 .* not retained"):
        diff_releases(records, settings, "default", 3, 4)
    records[1]["metrics"] = {**records[1]["metrics"], "accuracy": 0.99}
    records[1]["reason"] = "manual"
    with pytest.raises(SecurityError):
        diff_releases(records, settings, "default", 3, 5)


def test_release_rows_read_what_changed_from_the_audit_trail(tmp_path: Path) -> None:
    from streams.audit import AuditLog, audit_paths, release_rows

    settings = load_settings(environ={}, overrides={"model.signing_key": KEY, "state_dir": str(tmp_path)})
    lc = ModelLifecycle(
        "m", "classification", LearnerSpec("logistic_regression"), None, DriftConfig(), GuardConfig(),
        release_every=100,
    )  # fmt: skip
    log = AuditLog(settings, "default")
    log.append("release", release_explanation(lc.initial_release(), lc))
    rng = random.Random(3)
    for i in range(400):
        x = {"a": rng.uniform(-1, 1), "b": rng.uniform(-1, 1)}
        for event in lc.learn_one(x, int(x["b"] > 0), index=i):
            if isinstance(event, Release):
                log.append("release", release_explanation(event, lc))
    log.append("control", {"command": "pause_learning"})
    rows = release_rows(audit_paths(settings, "default")[0])
    assert len(rows) >= 3 and rows[0][:3] == (1, None, "initial") and rows[0][4] == "first release"
    version, parent, reason, learned, changes, guard = rows[-1]
    assert version > parent
    assert reason == "incremental" and parent == rows[-2][0]
    assert learned.startswith("examples ") and changes.startswith("b ")  # b decides the label here
    assert guard.startswith("accuracy ") and "paired labels" in guard
