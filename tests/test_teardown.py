"""The reaper frees replaced models in pieces and never modifies anything someone else still references."""

from __future__ import annotations

import collections
import copy
import pickle
import weakref
from itertools import islice
from types import SimpleNamespace
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from river import forest
from river.datasets import synth

from driftline.settings import Settings
from schemas.codec import default_codec
from streams.metrics import build_metrics
from streams.releases import LoadedModel
from streams.score import Scorer
from streams.teardown import Reaper, default_reaper


class Node:
    """A stand-in for a tree node: state in its instance dict."""

    def __init__(self, children: list[Any], stats: dict[str, float]) -> None:
        self.children = children
        self.stats = stats


class Finalised:
    """An object whose ``__del__`` needs its state: the reaper must leave that state in place."""

    seen: list[int] = []

    def __init__(self, value: int) -> None:
        self.value = value

    def __del__(self) -> None:
        Finalised.seen.append(self.value)


def _tree(depth: int, leaf: Any = None) -> Node:
    if depth == 0:
        return Node([leaf] if leaf is not None else [], {"n": 1.0})
    return Node([_tree(depth - 1, leaf) for _ in range(2)], {"n": float(depth)})


@pytest.fixture
def reaper() -> Any:
    r = Reaper(name="test-reaper")
    yield r
    r.stop()


def test_unshared_model_is_taken_apart(reaper: Reaper) -> None:
    keep: list[Any] = []
    model: dict[str, Any] = {
        "trees": [_tree(6) for _ in range(4)],
        "queue": collections.deque([{"a": 1}]),
        "s": {(1, 2)},
    }
    inner = model["trees"][0].children
    watch = weakref.ref(model["trees"][1])  # not trees[0]: a weakly referenced node is not cleared
    keep.append(inner)  # held from outside: must survive intact (and so must what it holds)
    snapshot = copy.deepcopy(inner)
    reaper.reap(model)
    del model  # the reaper now holds the last reference
    assert reaper.wait_idle(30.0)
    assert reaper.dismantled > 100  # the dicts, lists and node dicts were cleared one by one
    assert watch() is None  # the root's nodes are gone
    assert len(inner) == 2 and all(isinstance(n, Node) for n in inner)
    assert [_shape(n) for n in inner] == [_shape(n) for n in snapshot]


def _shape(node: Node) -> Any:
    return (dict(node.stats), [_shape(c) for c in node.children if isinstance(c, Node)])


def test_shared_sub_object_survives_and_new_model_is_untouched(reaper: Reaper) -> None:
    shared = [1.0, [2.0, {"x": 3.0}], {"deep": [4.0]}]
    new: dict[str, Any] = {"trees": [_tree(4, leaf=shared)], "weights": [0.5, 0.25]}
    old = {"trees": [_tree(4, leaf=shared)], "weights": [0.5, 0.25]}
    before_new = _shape(new["trees"][0]), copy.deepcopy(new["weights"])
    before_shared = copy.deepcopy(shared)
    reaper.reap(old)
    del old  # the reaper now holds the last reference
    assert reaper.wait_idle(30.0)
    assert reaper.dismantled > 10
    assert shared == before_shared
    assert (_shape(new["trees"][0]), new["weights"]) == before_new
    leaves = [new["trees"][0]]
    while leaves and leaves[0].children and isinstance(leaves[0].children[0], Node):
        leaves = [c for n in leaves for c in n.children]
    assert all(n.children == [shared] and n.children[0] is shared for n in leaves)


def test_shared_root_is_left_alone_until_the_reaper_holds_the_last_reference(reaper: Reaper) -> None:
    served: dict[str, Any] = {"trees": [_tree(3)], "weights": [1.0, 2.0]}
    snapshot = _shape(served["trees"][0]), list(served["weights"])
    reaper.reap(served)  # still referenced here (as by the follower or a `previous` slot)
    assert not reaper.wait_idle(0.3)
    assert reaper.pending() == 1 and reaper.dismantled == 0
    assert (_shape(served["trees"][0]), served["weights"]) == snapshot
    del served  # now the reaper holds the last reference: it takes the model apart
    assert reaper.wait_idle(30.0)
    assert reaper.dismantled > 5 and reaper.pending() == 0


def test_instance_dict_held_elsewhere_and_finalised_objects_keep_their_state(reaper: Reaper) -> None:
    node = Node([[1, 2]], {"n": 3.0})
    state = node.__dict__  # someone kept the instance dict itself
    Finalised.seen.clear()
    model = [node, Finalised(7), [Finalised(8)]]
    del node
    reaper.reap(model)
    del model  # the reaper now holds the last reference
    assert reaper.wait_idle(30.0)
    assert state == {"children": [[1, 2]], "stats": {"n": 3.0}}
    assert sorted(Finalised.seen) == [7, 8]  # each __del__ still found its `value`


def test_river_forest_is_freed_and_a_copy_of_it_still_predicts_the_same(reaper: Reaper) -> None:
    model = forest.ARFClassifier(n_models=3, seed=1, grace_period=20)
    data = list(islice(synth.Agrawal(classification_function=2, seed=7), 600))
    for x, y in data[:500]:
        model.learn_one(x, y)
    payload = pickle.dumps(model)
    old, new = pickle.loads(payload), pickle.loads(payload)
    expected = [new.predict_proba_one(x) for x, _ in data[500:]]
    watch = weakref.ref(old.models[0])
    reaper.reap(old)
    del old  # the reaper now holds the last reference
    assert reaper.wait_idle(30.0)
    assert watch() is None
    assert reaper.dismantled > 100
    assert [new.predict_proba_one(x) for x, _ in data[500:]] == expected


class _Follower:
    def __init__(self) -> None:
        self.pending: LoadedModel | None = None

    def take(self) -> LoadedModel | None:
        loaded, self.pending = self.pending, None
        return loaded

    def served(self, model: str, version: int) -> None:
        pass


def test_scorer_hands_the_replaced_model_to_the_reaper(settings: Settings) -> None:
    metrics = build_metrics(CollectorRegistry())
    ctx: Any = SimpleNamespace(
        settings=settings, metrics=metrics, model=settings.model.name, codec=default_codec()
    )
    follower = _Follower()
    scorer = Scorer(ctx, follower, store=None)  # type: ignore[arg-type]
    v1: dict[str, Any] = {"trees": [_tree(4)], "bias": [0.1]}
    tree_ref = weakref.ref(v1["trees"][0])
    follower.pending = LoadedModel(1, v1, {}, 0.0)
    assert scorer.maybe_swap()
    assert scorer.model is v1
    v2: dict[str, Any] = {"trees": [_tree(4)], "bias": [0.2]}
    v2_shape = _shape(v2["trees"][0])
    follower.pending = LoadedModel(2, v2, {}, 0.0)
    del v1, v2
    before = default_reaper().dismantled
    assert scorer.maybe_swap()
    assert default_reaper().wait_idle(30.0)
    assert tree_ref() is None and default_reaper().dismantled > before  # v1 freed by the reaper, in pieces
    assert scorer.version == 2 and _shape(scorer.model["trees"][0]) == v2_shape
    assert scorer.model["bias"] == [0.2]
