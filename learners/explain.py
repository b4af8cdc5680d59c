"""Explanations: what a model relies on (per-feature weights or importances), what changed between two
versions, and why one prediction came out as it did. Pure: models in, numbers out.

Methods, by model kind (the name travels with every explanation):

- ``linear_contribution`` (logistic / linear regression behind River's StandardScaler): feature ``i`` contributes
  ``w_i * z_i``, ``z_i`` the standardized value; the contributions plus ``_intercept`` are the model's raw score
  (for logistic regression: the log-odds of the predicted class). Weights are the ``coef`` of the standardized
  features (binary classification: toward the class whose ``str()`` sorts last, e.g. ``True`` or ``1``).
- ``saabas_path`` (Hoeffding trees, averaged over the members of an adaptive random forest): walking the
  prediction's path from the root, each split's feature is credited with the change of the node estimate (the
  predicted class's share of the node's weight, or the mean target for regression) from parent to child
  (Saabas 2014); the credits plus ``_root`` equal the leaf's estimate. Importances are split counts per feature.
- ``auto`` (a pool): the method of the member that answers.
- any other kind: ``none`` (no explanation; the diff still shows the metrics).

>>> from driftline.config import LearnerSpec
>>> from learners.specs import build_learner
>>> m = build_learner(LearnerSpec("linear_regression"), "regression")
>>> for i in range(200):
...     m.learn_one({"a": i % 7, "b": 1.0}, 2.0 * (i % 7))
>>> method, contrib = explain_one(m, {"a": 6, "b": 1.0})
>>> method, max(contrib, key=lambda k: abs(contrib[k]))
('linear_contribution', 'a')
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from learners.features import clean_features
from learners.snapshot import FrozenLinear

__all__ = ["explain_one", "feature_weights", "release_explanation", "weight_changes"]

LINEAR = "linear_contribution"
TREE = "saabas_path"
NONE = "none"


def _raw(learner: Any) -> Any:
    return getattr(learner, "model", learner)


def _leader(learner: Any) -> Any:
    """The member that answers for an ``auto`` pool (learners/pool.py), else ``learner`` itself."""
    raw = _raw(learner)
    members, leader = getattr(raw, "members", None), getattr(raw, "leader", None)
    if isinstance(members, list) and isinstance(leader, int) and 0 <= leader < len(members):
        return _leader(members[leader])
    return learner


def _linear_parts(raw: Any) -> tuple[list[Any], Any] | None:
    """(transformers before the estimator, the linear estimator) for a River pipeline ending in one."""
    steps = list(getattr(raw, "steps", {}).values()) if hasattr(raw, "steps") else [raw]
    est = steps[-1] if steps else None
    weights = getattr(est, "weights", None)
    if est is None or not isinstance(weights, Mapping) or not hasattr(est, "intercept"):
        return None
    if weights and not isinstance(next(iter(weights.values())), (int, float)):
        return None  # softmax: one weight vector per class
    return steps[:-1], est


def _trees(raw: Any) -> list[Any]:
    """The Hoeffding trees inside ``raw`` (itself, or an adaptive random forest's members)."""
    if getattr(raw, "_root", None) is not None:
        return [raw]
    members = getattr(raw, "models", None) or getattr(raw, "data", None)
    if isinstance(members, list):
        return [m for m in members if getattr(m, "_root", None) is not None]
    return []


def _branches(node: Any) -> list[Any]:
    out, stack = [], [node]
    while stack:
        n = stack.pop()
        children = getattr(n, "children", None)
        if children and getattr(n, "feature", None) is not None:
            out.append(n)
            stack.extend(c for c in children if c is not None)
    return out


def feature_weights(learner: Any) -> tuple[str, dict[str, float]]:
    """(method, {feature: weight}): linear coefficients, or split counts summed over a forest's trees (for an
    ``auto`` pool: those of the member that answers)."""
    if type(learner) is FrozenLinear:  # a released LR snapshot, its River objects not unpickled: its weights
        sign = -1.0 if _flipped(learner) else 1.0
        return LINEAR, {str(k): sign * float(v) for k, v in learner.linear_weights().items()}
    learner = _leader(learner)
    raw = _raw(learner)
    linear = _linear_parts(raw)
    if linear is not None:
        sign = -1.0 if _flipped(learner) else 1.0
        return LINEAR, {str(k): sign * float(v) for k, v in linear[1].weights.items()}
    trees = _trees(raw)
    if trees:
        counts: dict[str, float] = {}
        for t in trees:
            for b in _branches(t._root):
                counts[str(b.feature)] = counts.get(str(b.feature), 0.0) + 1.0
        return TREE, counts
    return NONE, {}


def weight_changes(before: Any, after: Any, top: int = 10) -> dict[str, Any]:
    """The ``top`` largest per-feature changes from ``before`` to ``after`` (either may be None: all zero)."""
    method_a, wa = feature_weights(before) if before is not None else (NONE, {})
    method_b, wb = feature_weights(after) if after is not None else (NONE, {})
    method = method_b if method_b != NONE else method_a
    if NONE not in (method_a, method_b) and method_a != method_b:
        method = f"{method_a}->{method_b}"  # a different kind of model: the numbers are not comparable
    # Ranked as (-|delta|, feature) tuples; a row's dict is made only for the ``top`` shown (a trainer explains
    # every release: building and sorting a dict per feature was three quarters of this function).
    get_a, get_b = wa.get, wb.get
    ranked = []
    for f in wa.keys() | wb.keys():
        before, after = get_a(f, 0.0), get_b(f, 0.0)
        delta = after - before
        ranked.append((-abs(delta), f, before, after, delta))
    ranked.sort(key=_rank)
    rows = [{"feature": f, "before": b, "after": a, "delta": d} for _, f, b, a, d in ranked[:top]]
    return {"method": method, "unit": _unit(method), "top": rows, "n_features": len(ranked)}


def _rank(row: tuple[float, str, float, float, float]) -> tuple[float, str]:
    return row[0], row[1]


def _unit(method: str) -> str:
    return {LINEAR: "coef (standardized features)", TREE: "splits on the feature"}.get(method, "")


def explain_one(learner: Any, x: Mapping[str, Any], prediction: Any = None) -> tuple[str, dict[str, float]]:
    """(method, {feature: contribution}) for one prediction of ``learner`` on ``x`` (see the module doc).

    ``prediction``: what ``learner`` predicted for ``x``, if the caller has it (saves predicting again). An
    ``auto`` pool is explained by the member that answers (for a regression pool past its warm-up, which blends its
    members, that is an approximation).
    """
    learner = _leader(learner)
    raw = _raw(learner)
    xc = clean_features(dict(x))
    linear = _linear_parts(raw)
    if linear is not None:
        steps, est = linear
        z = xc
        for step in steps:
            z = step.transform_one(z)
        sign = -1.0 if _against_prediction(learner, raw, est, xc, prediction) else 1.0
        out = {str(k): sign * float(w) * float(z.get(k, 0.0)) for k, w in est.weights.items() if k in z}
        out["_intercept"] = sign * float(est.intercept)
        return LINEAR, _finite(out)
    trees = _trees(raw)
    if not trees:
        return NONE, {}
    target = prediction
    if target is None and hasattr(raw, "predict_proba_one"):
        target = raw.predict_one(xc)
    total: dict[str, float] = {}
    for t in trees:
        for k, v in _saabas(t._root, xc, target).items():
            total[k] = total.get(k, 0.0) + v / len(trees)
    return TREE, _finite(total)


def _flipped(learner: Any) -> bool:
    """A binary logistic model scores its second-seen class; weights are reported toward the class with the
    larger ``str()`` (``True``, ``1``, ``yes``) so two versions that saw the classes in another order compare."""
    classes = getattr(learner, "_classes", None)
    if not getattr(learner, "_binary", False) or not classes or len(classes) < 2:
        return False
    return bool(classes[1] != max(classes[:2], key=str))


def _against_prediction(learner: Any, raw: Any, est: Any, xc: Mapping[str, Any], prediction: Any) -> bool:
    """True when a binary logistic model predicts its negative class: its score is the positive class's log-odds,
    and contributions are reported toward the predicted class."""
    if not hasattr(est, "predict_proba_one"):
        # a regressor: the score is the prediction itself. Asked of the estimator, not ``raw``: River's Pipeline
        # has ``predict_proba_one`` whatever its last step is (a regression's contributions came out negated).
        return False
    if learner is raw:
        return not (raw.predict_one(xc) if prediction is None else prediction)
    classes = getattr(learner, "_classes", None)
    positive = classes[1] if getattr(learner, "_binary", False) and classes and len(classes) > 1 else True
    if prediction is None:
        prediction = learner.predict_one(xc, cleaned=True)
    return bool(prediction != positive)


def _estimate(node: Any, target: Any) -> float:
    stats = getattr(node, "stats", None)
    if isinstance(stats, Mapping):
        weight = sum(float(v) for v in stats.values())
        return float(stats.get(target, 0.0)) / weight if weight > 0 else 0.0
    mean = getattr(stats, "mean", None)
    if mean is not None:
        return float(mean.get() if hasattr(mean, "get") else mean)
    return 0.0


def _saabas(root: Any, x: Mapping[str, Any], target: Any) -> dict[str, float]:
    out = {"_root": _estimate(root, target)}
    node = root
    while getattr(node, "children", None) and getattr(node, "feature", None) is not None:
        try:
            child = node.next(x)
        except KeyError:  # the feature is missing: River follows the most common path too
            child = node.most_common_path()[1]
        if child is None:
            break
        feature = str(node.feature)
        out[feature] = out.get(feature, 0.0) + _estimate(child, target) - _estimate(node, target)
        node = child
    return out


def _finite(values: dict[str, float]) -> dict[str, float]:
    return {k: (v if math.isfinite(v) else 0.0) for k, v in values.items()}


_FROM_LIFECYCLE: Any = object()


def release_explanation(
    release: Any,
    lifecycle: Any = None,
    top: int = 10,
    *,
    decision_json: dict[str, Any] | None = None,
    replaced_model: Any = _FROM_LIFECYCLE,
) -> dict[str, Any]:
    """What a :class:`~learners.lifecycle.Release` changed, for the audit trail: its metrics, the guard's evidence,
    the data range its lineage learned from, and the largest weight/importance changes from the model it replaced
    (when the lifecycle still holds it: incremental, challenger and manual releases; not the initial one or a
    rollback).

    ``replaced_model``: the model ``release`` replaced, when the caller knows it; by default the lifecycle's
    ``replaced_model``, which is that model only until the lifecycle releases again (a trainer publishing a
    batch's releases after the batch passes each one's own)."""
    import json

    parent_model = None
    if release.reason not in ("initial", "rollback"):
        if replaced_model is not _FROM_LIFECYCLE:
            parent_model = replaced_model
        elif lifecycle is not None:
            parent_model = lifecycle.replaced_model
    decision = release.decision
    return {
        "version": release.version,
        "parent": release.parent,
        "reason": release.reason,
        "metrics": dict(release.metrics),
        "data_range": dict(release.data_range),
        # decision_json: the trainer's parse of decision.to_json(), made once for the release's two audit entries.
        "decision": decision_json
        if decision_json is not None or decision is None
        else json.loads(decision.to_json()),
        "changes": weight_changes(parent_model, release.model, top) if parent_model is not None else None,
    }


def describe_release(record: Mapping[str, Any], top: int = 3) -> dict[str, str]:
    """One audited release (the record :func:`release_explanation` wrote) as short readable texts: where its data
    came from, its largest changes and the guard's evidence."""
    data = record.get("data_range") or {}
    learned = "-"
    if data:
        learned = f"examples {data.get('first_index', '?')}..{data.get('last_index', '?')}"
    changes = record.get("changes")
    rows = (changes or {}).get("top") or []
    if changes is None:
        changed = (
            "first release" if record.get("reason") == "initial" else "not compared (no parent model at hand)"
        )
    elif rows:
        shown = ", ".join(f"{r['feature']} {r['delta']:+.3g}" for r in rows[:top] if r.get("delta"))
        changed = f"{shown or 'no change'} ({changes.get('unit') or changes.get('method')})"
    else:
        changed = f"no per-feature weights yet ({changes.get('method')})"
    decision = record.get("decision") or {}
    evidence = decision.get("evidence") or {}
    if "candidate_accuracy" in evidence:
        guard = f"accuracy {evidence['baseline_accuracy']:.3f} -> {evidence['candidate_accuracy']:.3f}"
    elif "candidate_mae" in evidence:
        guard = f"MAE {evidence['baseline_mae']:.4g} -> {evidence['candidate_mae']:.4g}"
    else:
        guard = str(record.get("reason") or "-")
    if "n" in evidence:
        guard += f" on {int(evidence['n'])} paired labels"
    return {"learned_from": learned, "changes": changed, "guard": guard}
