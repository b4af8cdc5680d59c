"""A learning tree's fused splitter update (``learners.tree_learn``) is River's ``HTLeaf.update_splitters``, bit for
bit, and the learned class's terms it keeps are what ``frozen_tree._class_terms`` reads back.

Two trees learn the same stream, one through River's own method and one through the fused one (installed and
uninstalled around each learn, since the route is a class attribute); their pickles must be equal at the end and
their answers at every step, on streams with new features mid-stream, missing features, ints, booleans, NaN,
infinities, ``None``, strings (a nominal splitter: River's own update), three classes, and a tree that splits.
Every test here fails on the base (no ``tree_learn``).
"""

from __future__ import annotations

import random
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from river.tree import HoeffdingTreeClassifier
from river.tree.nodes.branch import DTBranch
from river.tree.nodes.htc_nodes import LeafMajorityClass
from river.tree.nodes.leaf import HTLeaf

from driftline.config import LearnerSpec
from learners import frozen_tree, nb_kernel, tree_learn
from learners.features import clean_features
from learners.specs import build_learner


@pytest.fixture(autouse=True)
def _restore() -> Any:
    was = tree_learn._ORIGINAL is not None
    yield
    tree_learn.uninstall()
    if was:
        tree_learn.install()


def _leaf(tree: Any, x: dict[str, Any]) -> Any:
    root = tree._root
    return root.traverse(x, until_leaf=True) if isinstance(root, DTBranch) else root


def _dump(obj: Any, seen: set[int] | None = None) -> Any:
    """Everything a tree holds, floats by ``repr`` (to the bit), except the random generators River gives each
    distribution (seeded from the OS: two trees never pickle alike because of them alone)."""
    seen = set() if seen is None else seen
    if isinstance(obj, random.Random):
        return "rng"
    if isinstance(obj, float):
        return repr(obj)
    if obj is None or isinstance(obj, (str, int, bool)):
        return obj
    if id(obj) in seen:
        return "seen"
    seen.add(id(obj))
    if isinstance(obj, dict):
        return [(_dump(k, seen), _dump(v, seen)) for k, v in obj.items()]
    if isinstance(obj, (list, tuple, set, frozenset)):
        items = sorted(obj, key=repr) if isinstance(obj, (set, frozenset)) else obj
        return (type(obj).__name__, [_dump(v, seen) for v in items])
    if hasattr(obj, "__dict__"):
        return (type(obj).__name__, _dump(vars(obj), seen))
    return repr(obj)


def _learn(tree: Any, x: dict[str, Any], y: Any) -> Any:
    try:
        tree.learn_one(x, y)
    except Exception as exc:  # River's own failure (a string compared with a float): the twin must fail alike
        return type(exc)
    return None


def _answer(tree: Any, x: dict[str, Any]) -> Any:
    try:
        return tree.predict_proba_one(x)
    except Exception as exc:
        return type(exc)


def _twins(rows: list[tuple[dict[str, Any], Any]], **params: Any) -> tuple[Any, Any, int, int]:
    """River's tree and the fused one over ``rows``; (river, fused, terms checked, learns recorded)."""
    river, fused = HoeffdingTreeClassifier(**params), HoeffdingTreeClassifier(**params)
    checked = recorded = 0
    for x, y in rows:
        tree_learn.uninstall()
        assert LeafMajorityClass.update_splitters is HTLeaf.update_splitters
        want = _learn(river, x, y)
        assert tree_learn.install()
        try:
            leaf = _leaf(fused, x) if fused._root is not None else None
        except (TypeError, KeyError):
            leaf = None
        cache: dict[Any, Any] = {}
        if leaf is not None and leaf.is_active():
            tree_learn.expect(leaf.splitters, cache)
        assert _learn(fused, x, y) == want  # the same exception, if any
        if cache:
            recorded += 1
            assert list(cache) == [y] and cache[y][0] == leaf.stats[y]
            assert repr(cache[y][1]) == repr(frozen_tree._class_terms(leaf.splitters, y))
        tree_learn.forget()
        if random.Random(len(x)).random() < 0.2:
            checked += 1
            assert repr(_answer(fused, x)) == repr(_answer(river, x))
    assert _dump(fused) == _dump(river)
    return river, fused, checked, recorded


def _stream(n: int, seed: int, classes: int = 2) -> list[tuple[dict[str, Any], Any]]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        x = {f"f{k}": rng.gauss(0, 1 + k) for k in range(8)}
        s = x["f0"] + 0.5 * x["f1"] - 0.3 * x["f4"] + rng.gauss(0, 0.4)
        y = s > 0 if classes == 2 else ("a" if s < -1 else "b" if s < 1.5 else "c")
        out.append((x, y))
    return out


@pytest.mark.parametrize(("seed", "classes"), [(1, 2), (2, 3)])
def test_the_fused_update_is_rivers_on_a_growing_tree(seed: int, classes: int) -> None:
    river, _, _, recorded = _twins(_stream(3000, seed, classes), grace_period=100)
    assert isinstance(river._root, DTBranch), "the tree must have split"
    assert recorded > 2000  # the plain rows keep their terms


value = st.one_of(
    st.floats(-5, 5),
    st.floats(-5, 5),
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(-(10**6), 10**6),
    st.booleans(),
    st.none(),
    st.sampled_from(["red", "green"]),
)


@given(
    rows=st.lists(
        st.tuples(
            st.dictionaries(st.sampled_from(["a", "b", "c", "d", "colour"]), value, min_size=1, max_size=5),
            st.sampled_from([True, False, False, "third"]),
        ),
        min_size=1,
        max_size=120,
    )
)
@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_the_fused_update_is_rivers_on_odd_rows(rows: list[tuple[dict[str, Any], Any]]) -> None:
    # Strings in a numeric feature raise in River's Gaussian splitter; the twins must fail alike, at the same row.
    def safe(rs: list[tuple[dict[str, Any], Any]]) -> list[tuple[dict[str, Any], Any]]:
        kinds: dict[str, bool] = {}
        out = []
        for x, y in rs:
            if any(kinds.setdefault(k, isinstance(v, str)) != isinstance(v, str) for k, v in x.items()):
                continue
            out.append((x, y))
        return out

    _twins(safe(rows), grace_period=20)


def test_terms_are_not_kept_for_a_feature_new_to_the_leaf_or_out_of_order() -> None:
    tree = HoeffdingTreeClassifier()
    for x, y in _stream(50, 4):
        tree.learn_one(x, y)
    assert tree_learn.install()
    leaf = _leaf(tree, {})
    x = dict(_stream(1, 5)[0][0])
    cache: dict[Any, Any] = {}
    tree_learn.expect(leaf.splitters, cache)
    tree.learn_one({**x, "new": 1.0}, True)
    assert not cache
    tree_learn.expect(leaf.splitters, cache)
    tree.learn_one(dict(reversed(list(x.items()))), True)
    assert not cache
    tree_learn.expect({}, cache)  # another leaf expected
    tree.learn_one({**x, "new": 2.0}, True)
    assert not cache
    tree_learn.expect(leaf.splitters, cache)
    tree.learn_one({**x, "new": 2.0}, True)
    assert list(cache) == [True] and cache[True][0] == leaf.stats[True]
    assert repr(cache[True][1]) == repr(frozen_tree._class_terms(leaf.splitters, True))
    tree.learn_one(x, False)  # not expected: nothing kept
    assert list(cache) == [True]


@pytest.mark.parametrize("mirrors", [False, True])
def test_a_learning_tree_predictor_takes_the_learned_terms(
    mirrors: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The trainer's champion path (predict, learn, predict): its answers are River's, and the learned class's
    terms come from the learn instead of a second read (or, session 20, from the leaf's mirror: River's objects
    get what it learned when they are read, here by ``flush_all``)."""
    assert tree_learn.install()
    if not mirrors:
        monkeypatch.setattr(nb_kernel, "_mirror", None)  # the Python path (as DRIFTLINE_NO_JIT=1)
    else:
        assert nb_kernel.compiled() is not None and nb_kernel.mirror_ready() is not None
    learner, twin = build_learner(LearnerSpec("hoeffding_tree")), build_learner(LearnerSpec("hoeffding_tree"))
    rows = _stream(2500, 6)
    for x, y in rows[:20]:
        learner.learn_one(x, y)
        twin.learn_one(x, y)
    predict = frozen_tree.learning_tree_predictor(learner)
    assert predict is not None
    reads = {"n": 0}
    original = frozen_tree._class_terms

    def counted(*a: Any) -> Any:
        reads["n"] += 1
        return original(*a)

    monkeypatch.setattr(frozen_tree, "_class_terms", counted)
    for x, y in rows[20:]:
        xc = clean_features(x)
        assert predict(xc) == twin.predict_one(x)
        learner.learn_one(xc, y, cleaned=True)
        frozen_tree.forget_recorded()
        twin.learn_one(x, y)
    tree_learn.flush_all()
    assert _dump(learner.model) == _dump(twin.model)
    assert reads["n"] < 0.05 * len(rows)  # without the kept terms: about one read per label
