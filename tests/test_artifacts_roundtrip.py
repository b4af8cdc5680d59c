"""Signed releases round-trip real River / scikit-learn models and driftline learners exactly."""

from __future__ import annotations

import hashlib
import json
import pickle
import random
from collections.abc import Callable
from itertools import islice
from typing import Any

import pytest
from river import compat, drift, forest, linear_model, multiclass, naive_bayes, preprocessing, tree
from river.datasets import synth
from sklearn import linear_model as sk_linear

from driftline.config import LearnerSpec
from driftline.errors import ArtifactError, SecurityError
from learners import safe_pickle
from learners.artifacts import ArtifactHeader, ArtifactStore, build_release, load_release, verify_release
from learners.specs import KINDS, TASKS, build_learner

KEY = b"test-signing-key"


def _stream(n: int, start: int = 0, seed: int = 7) -> list[tuple[dict[str, Any], Any]]:
    return list(islice(synth.Agrawal(classification_function=2, seed=seed), start, start + n))


def _release(model: object, version: int = 1, **kw: Any) -> dict[str, Any]:
    args: dict[str, Any] = {
        "name": "churn",
        "version": version,
        "parent": None,
        "reason": "initial",
        "metrics": {"accuracy": 0.75},
        "key": KEY,
        "n_learned": 300,
        "created_at": 1_700_000_000_000,
    }
    args.update(kw)
    return build_release(model, **args)


RIVER_MODELS: dict[str, Callable[[], Any]] = {
    "logistic_pipeline": lambda: preprocessing.StandardScaler() | linear_model.LogisticRegression(),
    "hoeffding_tree": lambda: tree.HoeffdingTreeClassifier(grace_period=50),
    "hoeffding_adaptive_tree": lambda: tree.HoeffdingAdaptiveTreeClassifier(grace_period=50, seed=1),
    "arf": lambda: forest.ARFClassifier(n_models=3, seed=1, grace_period=50),
    "gaussian_nb": naive_bayes.GaussianNB,
    "sklearn_sgd": lambda: (
        preprocessing.StandardScaler()
        | compat.convert_sklearn_to_river(
            sk_linear.SGDClassifier(loss="log_loss", random_state=0), classes=[0, 1]
        )
    ),
    "one_vs_rest": lambda: multiclass.OneVsRestClassifier(linear_model.LogisticRegression()),
}


@pytest.mark.parametrize("kind", sorted(RIVER_MODELS))
def test_river_models_round_trip_and_keep_learning_identically(kind: str) -> None:
    model = RIVER_MODELS[kind]()
    for x, y in _stream(400):
        model.learn_one(x, y)
    header, restored_obj = load_release(_release(model), key=KEY)
    restored: Any = restored_obj
    assert type(restored) is type(model)
    assert header.model == "churn" and header.version == 1
    later = _stream(200, start=400)
    assert [restored.predict_one(x) for x, _ in later] == [model.predict_one(x) for x, _ in later]
    # Learning after a reload must follow the same path: only never-used sampling generators were reseeded.
    for x, y in later:
        model.learn_one(x, y)
        restored.learn_one(x, y)
    final = _stream(200, start=600)
    assert [restored.predict_proba_one(x) for x, _ in final] == [model.predict_proba_one(x) for x, _ in final]


def test_bound_methods_are_not_loadable_any_more() -> None:
    # Page-Hinkley pickles a bound method (getattr); no learner kind does, so getattr is off the allow-list
    # (tests/test_safe_pickle_allow.py records what every kind pickles).
    detector = drift.PageHinkley(mode="up")
    with pytest.raises(SecurityError, match=r"allow-list: .*PageHinkley is not allowed"):
        load_release(_release(detector), key=KEY)


def _learner_cases() -> list[tuple[str, str, dict[str, Any]]]:
    cases = []
    for name, (_, tasks) in sorted(KINDS.items()):
        for task in tasks:
            params: dict[str, Any] = {}
            if name == "sklearn_sgd" and task == "classification":
                params = {"classes": [0, 1]}
            cases.append((name, task, params))
    cases.append(
        ("window_refit", "classification", {"estimator": "random_forest", "window": 200, "every": 50})
    )
    assert all(task in TASKS for _, task, _ in cases)
    return cases


@pytest.mark.parametrize(("name", "task", "params"), _learner_cases())
def test_every_learner_kind_round_trips(name: str, task: str, params: dict[str, Any]) -> None:
    learner = build_learner(LearnerSpec(name, params), task=task, seed=3)
    rows = _stream(300)
    for x, y in rows:
        learner.learn_one(x, x["salary"] if task == "regression" else y)
    restored: Any = load_release(_release(learner), key=KEY)[1]
    probe = [x for x, _ in _stream(50, start=300)]
    assert [restored.predict_one(x) for x in probe] == [learner.predict_one(x) for x in probe]


def test_header_is_canonical_and_carries_lineage_fields() -> None:
    release = _release(
        linear_model.LogisticRegression(),
        version=4,
        parent=3,
        reason="incremental",
        data_range={"first": 10, "last": 99},
    )
    text = release["header"]
    assert text == json.dumps(json.loads(text), sort_keys=True, separators=(",", ":"))
    header = ArtifactHeader.from_json(text)
    assert header.to_json() == text
    assert (header.model, header.version, header.parent, header.reason) == ("churn", 4, 3, "incremental")
    assert header.n_learned == 300 and header.data_range == {"first": 10, "last": 99}
    assert set(header.libraries) == {"python", "river", "sklearn", "numpy"}
    assert header.format == release["format"] == safe_pickle.FORMAT == "pickle5+zlib+steps"
    assert header.sha256 == hashlib.sha256(release["artifact"]).hexdigest() == release["sha256"]
    assert release["metrics"] == {"accuracy": 0.75, "n_learned": 300.0}
    assert len(release["signature"]) == 64 and int(release["signature"], 16) >= 0
    assert KEY.decode() not in text and KEY not in release["artifact"]


def test_same_model_same_time_gives_same_signature() -> None:
    model = tree.HoeffdingTreeClassifier(grace_period=50)
    for x, y in _stream(500):
        model.learn_one(x, y)
    assert _release(model)["signature"] == _release(model)["signature"]


def test_compact_pickle_shrinks_trees_and_leaves_the_live_model_untouched() -> None:
    model = forest.ARFClassifier(n_models=3, seed=1, grace_period=50)
    for x, y in _stream(2000):
        model.learn_one(x, y)
    rngs = _distribution_rngs(model)
    assert rngs, "expected River distributions with their own generators in an ARF"
    before = [r.getstate() for r in rngs]
    compact = safe_pickle.dumps(model)
    assert [r.getstate() for r in rngs] == before
    plain = pickle.dumps(model, protocol=5)
    import zlib

    assert len(compact) * 5 < len(zlib.compress(plain, 6))


def _distribution_rngs(model: Any) -> list[random.Random]:
    from river.proba.base import Distribution

    found: dict[int, random.Random] = {}
    stack, seen = [model], set()
    while stack:
        obj = stack.pop()
        if id(obj) in seen or isinstance(obj, str | bytes | int | float | type):
            continue
        seen.add(id(obj))
        if isinstance(obj, Distribution):
            found[id(obj._rng)] = obj._rng
        if isinstance(obj, dict):
            stack.extend(obj.values())
        elif isinstance(obj, list | tuple | set):
            stack.extend(obj)
        elif hasattr(obj, "__dict__"):
            stack.extend(vars(obj).values())
    return list(found.values())


def test_large_artifact_travels_by_reference_and_is_checked_by_sha256(tmp_path: Any) -> None:
    store = ArtifactStore(tmp_path / "store")
    model = tree.HoeffdingTreeClassifier(grace_period=50)
    for x, y in _stream(500):
        model.learn_one(x, y)
    release = _release(model, max_inline_bytes=100, store=store)
    assert release["artifact"] is None
    assert release["artifact_ref"] == f"file://{store.directory / release['sha256']}"
    _, restored = load_release(release, key=KEY, store=store)
    assert type(restored) is tree.HoeffdingTreeClassifier
    with pytest.raises(ArtifactError, match="no artifact store"):
        verify_release(release, key=KEY)
    # Someone rewrites the stored file: the digest no longer matches, nothing is unpickled.
    path = store.directory / release["sha256"]
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(SecurityError, match="sha256 mismatch"):
        load_release(release, key=KEY, store=store)


def test_reference_outside_the_store_is_refused(tmp_path: Any) -> None:
    store = ArtifactStore(tmp_path / "store")
    release = _release(linear_model.LogisticRegression(), max_inline_bytes=10, store=store)
    outside = tmp_path / release["sha256"]
    outside.write_bytes((store.directory / release["sha256"]).read_bytes())
    forged = dict(release, artifact_ref=f"file://{outside}")
    with pytest.raises(SecurityError, match="is not the entry"):
        verify_release(forged, key=KEY, store=store)
    with pytest.raises(SecurityError, match="not a file:// reference"):
        verify_release(dict(release, artifact_ref="http://example.invalid/x"), key=KEY, store=store)


def test_oversized_payload_without_a_store_is_an_error() -> None:
    with pytest.raises(ArtifactError, match="exceeds max_inline_bytes=10"):
        _release(linear_model.LogisticRegression(), max_inline_bytes=10)


def test_store_put_is_idempotent(tmp_path: Any) -> None:
    store = ArtifactStore(tmp_path)
    assert store.put(b"abc") == store.put(b"abc")
    assert [p.name for p in tmp_path.iterdir()] == [hashlib.sha256(b"abc").hexdigest()]


def test_parent_must_be_older() -> None:
    with pytest.raises(ArtifactError, match="parent 5 must be older than version 5"):
        _release(linear_model.LogisticRegression(), version=5, parent=5)


def test_store_directory_expands_the_home_directory(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """The default ``model.artifact_store`` is ``~/.driftline/artifacts``: it is the home directory's, the same for
    a trainer and scorers started in different working directories, not a folder named ``~`` in each one's."""
    home, elsewhere = tmp_path / "home", tmp_path / "cwd"
    home.mkdir()
    elsewhere.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(elsewhere)
    store = ArtifactStore("~/.driftline/artifacts")
    assert store.directory == (home / ".driftline" / "artifacts").resolve()
    ref = store.put(b"abc")
    assert ref == f"file://{home.resolve()}/.driftline/artifacts/{hashlib.sha256(b'abc').hexdigest()}"
    assert not (elsewhere / "~").exists()
