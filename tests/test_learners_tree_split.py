"""A learning tree leaf's split attempt compiled (``learners.tree_split``, session 21) suggests what River's
``best_split_suggestions`` does, to the bit: every suggestion's merit, feature, threshold and branch weights, in
River's order.

Random leaves (1-4 classes, 1-5 features, weights, one class, zero variance, tied features, constant features,
values near 1e300 and 1e-300, any ``n_splits``, pre-pruning on or off) are asked through the route (compiled from
River's objects, and from the leaf's mirror) and through River's own method; trees learn the same stream with
the compiled split attempts and with River's, and must be equal (every float by ``repr``) after thousands of
labels and several splits. numba's ``erf``, ``log2`` and run-time ``** 0.5`` are checked against CPython's on a
million values, since the kernel's bits rest on them. Every test here fails on the base (no ``tree_split``).
"""

from __future__ import annotations

import math
import random
import re
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from river.tree import HoeffdingTreeClassifier
from river.tree.nodes.htc_nodes import LeafMajorityClass, LeafNaiveBayesAdaptive
from river.tree.splitter import GaussianSplitter

from driftline.config import LearnerSpec
from learners import frozen_tree, nb_kernel, tree_learn, tree_split
from learners.specs import build_learner
from tests.test_learners_tree_learn import _dump


@pytest.fixture(autouse=True)
def _jit_on(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DRIFTLINE_JIT", raising=False)
    monkeypatch.delenv("DRIFTLINE_NO_JIT", raising=False)
    assert nb_kernel.compiled() is not None, "numba is a dependency: the kernels must compile"
    assert nb_kernel.split_ready() is not None
    assert tree_learn.install()
    monkeypatch.setattr(tree_learn, "COMPILED_SPLITS", True)


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """How many split attempts the kernel answered, and how many of them from a leaf's mirror."""
    calls = {"compiled": 0, "mirror": 0, "river": 0}
    suggest = tree_split.suggestions

    def counted_suggest(leaf: Any, criterion: Any, tree: Any, mirror: Any, kernel: Any) -> Any:
        got = suggest(leaf, criterion, tree, mirror, kernel)
        calls["compiled"] += got is not None
        calls["mirror"] += got is not None and mirror is not None
        calls["river"] += got is None
        return got

    monkeypatch.setattr(tree_split, "suggestions", counted_suggest)
    return calls


def _rivers(leaf: Any, criterion: Any, tree: Any) -> Any:
    tree_learn.flush_splitters(leaf.splitters)
    assert tree_learn._ORIGINAL_SUGGEST is not None
    return tree_learn._ORIGINAL_SUGGEST(leaf, criterion, tree)


def _shown(suggestions: list[Any]) -> list[Any]:
    return [
        (repr(s.merit), s.feature, repr(s.split_info), _dump(s.children_stats), s.numerical_feature)
        for s in suggestions
    ]


def test_the_kernel_reads_the_mirrors_fields() -> None:
    got = (tree_split._N, tree_split._M, tree_split._S, tree_split._DDOF, tree_split._LO, tree_split._HI)
    assert got == (nb_kernel._N, nb_kernel._M, nb_kernel._S, nb_kernel._DDOF, nb_kernel._LO, nb_kernel._HI)


def test_numba_erf_log2_and_pow_are_cpythons() -> None:
    """The kernel's bits rest on numba calling libm's ``erf``, ``log2`` and ``pow`` as CPython 3.11 does."""
    import numba

    @numba.njit
    def apply(a: Any, half: Any, erf: Any, log2: Any, root: Any) -> None:
        for i in range(a.shape[0]):
            erf[i] = 0.5 * (1.0 + math.erf(a[i] / math.sqrt(2.0)))
            log2[i] = math.log2(abs(a[i])) if a[i] != 0.0 else 0.0
            root[i] = abs(a[i]) ** half[0]

    rng = np.random.default_rng(7)
    n = 200_000
    bits = np.frombuffer(rng.integers(0, 2**63, n, dtype=np.int64).tobytes(), dtype=np.float64)
    a = np.concatenate(
        [
            rng.normal(size=n) * 3,
            rng.uniform(-8, 8, n),
            rng.normal(size=n) * 10 ** rng.uniform(-300, 300, n),
            rng.uniform(-1e-3, 1e-3, n),
            bits[np.isfinite(bits)],
        ]
    )
    erf, log2, root = np.empty_like(a), np.empty_like(a), np.empty_like(a)
    apply(a, np.array([0.5]), erf, log2, root)
    values = a.tolist()
    assert erf.tolist() == [0.5 * (1.0 + math.erf(v / math.sqrt(2.0))) for v in values]
    assert log2.tolist() == [math.log2(abs(v)) if v != 0.0 else 0.0 for v in values]
    assert root.tolist() == [abs(v) ** 0.5 for v in values]


value = st.one_of(
    st.floats(-5, 5, allow_subnormal=False),
    st.floats(-5, 5, allow_subnormal=False),
    st.integers(-3, 3).map(float),  # ties between classes' bounds and candidates
    st.floats(-1e6, 1e6),
    st.sampled_from([0.0, 1.0, -1.0, 1e300, -1e300, 1e-300, 5e-324]),
    st.floats(-1e150, 1e150),
)


@given(
    rows=st.lists(
        st.tuples(
            st.lists(value, min_size=5, max_size=5),
            st.sampled_from(["a", "b", "b", "c", "d"]),
            st.sampled_from([1.0, 1.0, 0.5, 3.25, 1e-3]),
        ),
        min_size=1,
        max_size=80,
    ),
    features=st.integers(1, 5),
    classes=st.integers(1, 4),
    tie=st.booleans(),
    constant=st.booleans(),
    n_splits=st.sampled_from([10, 10, 0, 1, 3, 25]),
    preprune=st.booleans(),
    share=st.sampled_from([0.99, 1.0, 0.5]),
    fraction=st.sampled_from([0.01, 0.0, 0.3]),
)
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_random_leaves_suggest_as_river(
    rows: list[tuple[list[float], str, float]],
    features: int,
    classes: int,
    tie: bool,
    constant: bool,
    n_splits: int,
    preprune: bool,
    share: float,
    fraction: float,
) -> None:
    tree = HoeffdingTreeClassifier(
        merit_preprune=preprune, max_share_to_split=share, min_branch_fraction=fraction
    )
    criterion = tree._new_split_criterion()
    leaf = LeafMajorityClass({}, 0, GaussianSplitter(n_splits=n_splits))  # (its learn does not predict)
    labels = ["a", "b", "c", "d"][:classes]
    for values, y, w in rows:
        x = {f"f{k}": values[k] for k in range(features)}
        if tie:
            x["twin"] = x["f0"]  # the same statistics as f0: equal merits, River's first kept
        if constant:
            x["flat"] = 2.5  # zero variance for every class
        leaf.learn_one(x, labels[labels.index(y) % classes] if y in labels else labels[-1], w=w, tree=tree)
    want = _shown(_rivers(leaf, criterion, tree))
    got = tree_split.suggestions(leaf, criterion, tree, None, nb_kernel.split_ready())
    event(f"kernel: {got is not None}, classes at the leaf: {len(leaf.stats)}")
    if got is not None:
        assert _shown(got) == want
    mirror = tree_learn.mirror_of(leaf, None)
    if mirror is not None:
        from_mirror = tree_split.suggestions(leaf, criterion, tree, mirror, nb_kernel.split_ready())
        assert (from_mirror is None) == (got is None)  # (the same statistics: the same decision to take it)
        if from_mirror is not None:
            assert _shown(from_mirror) == want
    assert _shown(leaf.best_split_suggestions(criterion, tree)) == want  # the route, whichever path it takes


def test_random_leaves_take_the_kernel() -> None:
    """The property test above is not vacuous: ordinary leaves (2-3 classes, 20 features) take the kernel, from
    River's objects and from a mirror, with many candidates per feature, and suggest what River does."""
    rng = random.Random(3)
    tree = HoeffdingTreeClassifier()
    criterion = tree._new_split_criterion()
    for trial in range(60):
        leaf = LeafNaiveBayesAdaptive({}, 0, GaussianSplitter())
        classes = 2 + trial % 2
        for _ in range(rng.randint(20, 400)):
            y = rng.randrange(classes)
            x = {f"f{k}": rng.gauss(y * (k % 3), 1 + k % 4) for k in range(20)}
            leaf.learn_one(x, y, w=1.0, tree=tree)
        want = _shown(_rivers(leaf, criterion, tree))
        assert any(s.feature is not None for s in _rivers(leaf, criterion, tree))
        got = tree_split.suggestions(leaf, criterion, tree, None, nb_kernel.split_ready())
        assert got is not None and _shown(got) == want
        mirror = tree_learn.mirror_of(leaf, None)
        assert mirror is not None
        got = tree_split.suggestions(leaf, criterion, tree, mirror, nb_kernel.split_ready())
        assert got is not None and _shown(got) == want


def test_what_the_kernel_does_not_model_is_rivers(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = random.Random(4)
    tree = HoeffdingTreeClassifier()
    leaf = LeafMajorityClass({}, 0, GaussianSplitter())
    for _ in range(300):
        y = rng.randrange(2)
        leaf.learn_one({"a": rng.gauss(y, 1), "b": rng.gauss(0, 1)}, y, w=1.0, tree=tree)
    info_gain = tree._new_split_criterion()
    assert tree_split.suggestions(leaf, info_gain, tree, None, nb_kernel.split_ready()) is not None
    gini = HoeffdingTreeClassifier(split_criterion="gini")._new_split_criterion()
    assert (
        tree_split.suggestions(leaf, gini, tree, None, nb_kernel.split_ready()) is None
    )  # another criterion
    assert _shown(leaf.best_split_suggestions(gini, tree)) == _shown(_rivers(leaf, gini, tree))
    # a statistic that is not finite: River decides (its arithmetic on inf and NaN)
    leaf.splitters["a"]._att_dist_per_class[0]._var._S = math.inf
    assert tree_split.suggestions(leaf, info_gain, tree, None, nb_kernel.split_ready()) is None
    assert _shown(leaf.best_split_suggestions(info_gain, tree)) == _shown(_rivers(leaf, info_gain, tree))
    leaf.splitters["a"]._att_dist_per_class[0]._var._S = 1.0
    leaf.splitters["a"].n_splits = 10.0  # not an int
    assert tree_split.suggestions(leaf, info_gain, tree, None, nb_kernel.split_ready()) is None
    leaf.splitters["a"].n_splits = 10
    monkeypatch.setenv("DRIFTLINE_NO_JIT", "1")  # the pure-Python fallback: River's own method
    assert nb_kernel.split_ready() is None
    assert tree_split.suggestions(leaf, info_gain, tree, None, nb_kernel.split_ready()) is None
    assert _shown(leaf.best_split_suggestions(info_gain, tree)) == _shown(_rivers(leaf, info_gain, tree))


def _stream(n: int, seed: int, classes: int) -> list[tuple[dict[str, float], Any]]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        x = {f"f{k}": rng.gauss(0, 1 + k) for k in range(20)}
        drift = 1.0 if i < n // 2 else -1.0
        s = drift * x["f0"] + 0.5 * x["f1"] - 0.3 * x["f4"] + rng.gauss(0, 0.4)
        y = s > 0 if classes == 2 else ("a" if s < -1 else "b" if s < 1.5 else "c")
        out.append((x, y))
    return out


@pytest.mark.parametrize(("seed", "classes", "predicted"), [(1, 2, True), (2, 3, True), (3, 2, False)])
def test_a_tree_learns_as_rivers_with_the_split_attempts_compiled(
    seed: int, classes: int, predicted: bool, counted: dict[str, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Twins over a drifting stream: one predicts through the learning predictor (its leaves' mirrors) or not at
    all, and its split attempts run compiled; the other's are River's. Equal at random points and at the end."""
    spec = LearnerSpec("hoeffding_tree", {"grace_period": 50})
    compiled, rivers = build_learner(spec), build_learner(spec)
    rng = random.Random(seed)
    predict = None
    for i, (x, y) in enumerate(_stream(5000, seed, classes)):
        if predicted and len(compiled._classes) > 1:
            if predict is None or rng.random() < 0.01:
                predict = frozen_tree.frozen_tree_predictor(compiled, learning=True)
            assert predict is not None
            predict(x)
        compiled.learn_one(x, y, cleaned=True)
        frozen_tree.forget_recorded()
        monkeypatch.setattr(tree_learn, "COMPILED_SPLITS", False)
        rivers.learn_one(x, y, cleaned=True)
        monkeypatch.setattr(tree_learn, "COMPILED_SPLITS", True)
        if i % 1000 == 999:
            tree_learn.flush_all()
            assert _dump(compiled.model) == _dump(rivers.model)
    tree_learn.flush_all()
    assert _dump(compiled.model) == _dump(rivers.model)
    assert compiled.model.n_nodes >= 5, "the trees must have split"
    assert counted["compiled"] >= 50, counted
    assert counted["river"] == 0, counted
    if predicted:
        assert counted["mirror"] >= counted["compiled"] // 2, counted


def test_a_split_leaf_leaves_the_registry() -> None:
    """A leaf that split (or stopped learning) takes its mirror, its Gaussians and itself out of the registry (it
    was kept until 512 mirrors filled it); the leaves still learning keep theirs, and the tree is River's."""
    tree_learn.flush_all()
    tree_learn._MIRRORS.clear()
    spec = LearnerSpec("hoeffding_tree", {"grace_period": 50})
    learner, rivers = build_learner(spec), build_learner(spec)
    splits = 0
    for x, y in _stream(4000, 9, 2):
        if len(learner._classes) > 1:
            predict = frozen_tree.frozen_tree_predictor(learner, learning=True)
            assert predict is not None
            predict(x)
        nodes = learner.model.n_nodes
        learner.learn_one(x, y, cleaned=True)
        frozen_tree.forget_recorded()
        rivers.learn_one(x, y, cleaned=True)
        splits += learner.model.n_nodes != nodes
        leaves = {id(leaf) for leaf in learner.model._root.iter_leaves()}
        assert all(id(m.leaf) in leaves for m in tree_learn._MIRRORS.values())
    assert splits >= 2
    assert tree_learn._MIRRORS, "the learning leaves keep their mirrors"
    tree_learn.flush_all()
    assert _dump(learner.model) == _dump(rivers.model)


def test_sigma_is_cpythons_pow_not_sqrt() -> None:
    """``Gaussian.sigma`` is ``variance ** 0.5``, libm's ``pow``, which is not ``sqrt`` for ~0.08 % of doubles: leaves
    whose variances are such doubles suggest River's merits and branches (a kernel taking ``sqrt`` fails here)."""
    from river.proba import Gaussian

    rng = random.Random(11)
    variances: list[float] = []
    while len(variances) < 40:
        v = rng.uniform(0.01, 50.0)
        if v**0.5 != math.sqrt(v):
            variances.append(v)
    tree = HoeffdingTreeClassifier()
    criterion = tree._new_split_criterion()
    kernel = nb_kernel.split_ready()
    for i in range(0, len(variances), 2):
        leaf = LeafMajorityClass({0: 2.0, 1: 2.0}, 0, GaussianSplitter())
        splitter = GaussianSplitter()
        for cls, v in ((0, variances[i]), (1, variances[i + 1])):
            gaussian = Gaussian()
            gaussian._var.mean.n = 2.0  # n - ddof = 1.0: the variance is S itself
            gaussian._var.mean._mean = float(cls) + rng.uniform(-0.5, 0.5)
            gaussian._var._S = v
            splitter._att_dist_per_class[cls] = gaussian
            splitter._min_per_class[cls] = -3.0 + cls
            splitter._max_per_class[cls] = 3.0 + cls
        leaf.splitters = {"a": splitter}
        got = tree_split.suggestions(leaf, criterion, tree, None, kernel)
        assert got is not None and _shown(got) == _shown(_rivers(leaf, criterion, tree))


@pytest.mark.parametrize("kind", ["hoeffding_adaptive_tree", "adaptive_random_forest"])
def test_other_river_trees_learn_as_rivers(
    kind: str, counted: dict[str, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    """River's adaptive tree and forest leaves split through ``LeafMajorityClass``'s method too (from River's
    objects: no mirrors there): twins with the compiled split attempts and River's are equal."""
    spec = LearnerSpec(kind, {"grace_period": 50} if kind == "hoeffding_adaptive_tree" else {"n_models": 3})
    compiled, rivers = build_learner(spec), build_learner(spec)
    for x, y in _stream(2500, 4, 2):
        compiled.learn_one(x, y, cleaned=True)
        monkeypatch.setattr(tree_learn, "COMPILED_SPLITS", False)
        rivers.learn_one(x, y, cleaned=True)
        monkeypatch.setattr(tree_learn, "COMPILED_SPLITS", True)

    # (ADWIN's Rust helper prints its address: the rest of every detector, tree and leaf to the bit)
    def shown(model: Any) -> str:
        return re.sub(r" at 0x[0-9a-f]+>", ">", repr(_dump(model)))

    assert shown(compiled.model) == shown(rivers.model)
    assert counted["compiled"] >= 10, counted


def test_a_leaf_class_with_its_own_step_between_is_rivers() -> None:
    from river.tree.nodes.leaf import HTLeaf

    class Between(HTLeaf):
        def best_split_suggestions(self, criterion: Any, tree: Any) -> Any:
            return super().best_split_suggestions(criterion, tree)

    class Odd(LeafMajorityClass, Between):
        pass

    assert tree_split._rivers_two_steps(LeafNaiveBayesAdaptive)
    assert not tree_split._rivers_two_steps(Odd)
    tree = HoeffdingTreeClassifier()
    leaf = Odd({}, 0, GaussianSplitter())
    rng = random.Random(5)
    for _ in range(200):
        y = rng.randrange(2)
        leaf.learn_one({"a": rng.gauss(y, 1)}, y, w=1.0, tree=tree)
    assert (
        tree_split.suggestions(leaf, tree._new_split_criterion(), tree, None, nb_kernel.split_ready()) is None
    )
