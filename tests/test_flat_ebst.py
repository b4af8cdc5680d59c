"""River's E-BSTs pickle flat: a regression tree fed a feature that only grows (a date) can be released, copied,
checkpointed and replayed, where pickle's recursion through the chain of nodes used to raise ``RecursionError``."""

from __future__ import annotations

import csv
import io
import json
import pickle
import random
from pathlib import Path
from typing import Any

import pytest

from driftline.config import LearnerSpec
from driftline.errors import SecurityError
from learners import flat_ebst, safe_pickle
from learners.artifacts import build_release, load_release
from learners.specs import build_learner
from streams.cli import main

KEY = b"k" * 32


def _dated(n: int, seed: int = 0) -> list[tuple[dict[str, float], float]]:
    """TrumpApproval's shape: an ordinal date that grows by one per row, a few polls, a slowly moving target."""
    rng = random.Random(seed)
    level, out = 43.0, []
    for i in range(n):
        level += rng.gauss(0, 0.05)
        out.append(
            ({"ordinal_date": 736389.0 + i, "poll": level + rng.gauss(0, 1)}, level + rng.gauss(0, 0.3))
        )
    return out


def _roots(model: Any) -> list[Any]:
    """Every E-BST root inside ``model``."""
    from river.tree.splitter.ebst_splitter import EBSTNode

    found, stack, seen = [], [model], set()
    while stack:
        obj = stack.pop()
        if id(obj) in seen or isinstance(obj, (str, int, float, bytes, type)):
            continue
        seen.add(id(obj))
        if isinstance(obj, EBSTNode):
            found.append(obj)
            continue
        if isinstance(obj, dict):
            stack.extend(obj.values())
        elif isinstance(obj, (list, tuple, set)):
            stack.extend(obj)
        else:
            stack.extend(getattr(obj, "__dict__", {}).values())
            stack.extend(getattr(obj, s) for s in getattr(type(obj), "__slots__", ()) if hasattr(obj, s))
    return found


def _depth(root: Any) -> int:
    deepest, stack = 0, [(root, 1)]
    while stack:
        node, d = stack.pop()
        deepest = max(deepest, d)
        stack.extend((c, d + 1) for c in (node._left, node._right) if c is not None)
    return deepest


@pytest.mark.parametrize("kind", ["hoeffding_tree", "auto"])
def test_a_tree_fed_a_growing_date_is_released_copied_and_checkpointed(kind: str) -> None:
    model = build_learner(LearnerSpec(kind), "regression")
    rows = _dated(2500)
    for x, y in rows[:2000]:
        model.learn_one(x, y)
    assert max(_depth(r) for r in _roots(model)) > 500  # a chain deeper than pickle's recursion allowed
    record = build_release(model, name="m", version=2, parent=1, reason="incremental", metrics={}, key=KEY,
                           n_learned=2000)  # fmt: skip
    _, loaded = load_release(record, key=KEY)  # the verifying, allow-listed loader
    copied = model.copy()
    checkpoint = pickle.loads(pickle.dumps({"model": model}, protocol=5))["model"]  # as a trainer's changelog
    twins = (loaded, copied, checkpoint)
    for twin in twins:
        assert [_plain(r) for r in _roots(twin)] == [_plain(r) for r in _roots(model)]
    for x, y in rows[2000:]:
        expected = model.predict_one(x)
        assert all(t.predict_one(x) == expected for t in twins)
        for m in (model, *twins):
            m.learn_one(x, y)


def _plain(root: Any) -> list[tuple[Any, ...]]:
    """:func:`flat_ebst.flatten`'s rows with each statistic as its numbers (River's ``Var`` compares by identity)."""
    return [
        (a, e.mean.n, e.mean.get(), e.get(), m, left, right)
        for a, e, m, left, right in flat_ebst.flatten(root)
    ]


def _rows_of(tree: Any) -> list[tuple[Any, ...]]:
    return _plain(_roots(tree)[0])


def test_rows_keep_every_node_value_statistic_and_link() -> None:
    model = build_learner(LearnerSpec("hoeffding_tree"), "regression")
    rng = random.Random(3)
    for _ in range(300):  # values in random order: a bushy tree with left and right children
        model.learn_one({"a": rng.uniform(0, 1)}, rng.uniform(0, 1))
    root = _roots(model.model)[0]
    rows = flat_ebst.flatten(root)
    assert any(r[3] >= 0 for r in rows) and any(r[4] >= 0 for r in rows)
    rebuilt = flat_ebst.rebuild(rows)
    assert _plain(rebuilt) == _plain(root)
    assert _depth(rebuilt) == _depth(root) >= 3


@pytest.mark.parametrize(
    "links",
    [
        [(1, -1), (0, -1)],  # a cycle back to the root
        [(1, 1), (-1, -1)],  # one child under both sides
        [(2, -1), (-1, -1), (-1, -1), (2, -1)],  # a row claimed twice
        [(5, -1), (-1, -1)],  # out of range
        [(True, -1), (-1, -1)],  # not an int
    ],
)
def test_crafted_rows_are_refused(links: list[tuple[Any, Any]]) -> None:
    from river.stats import Var

    rows = tuple((float(i), Var(), False, left, right) for i, (left, right) in enumerate(links))
    with pytest.raises(SecurityError):
        flat_ebst.rebuild(rows)
    with pytest.raises(SecurityError):
        flat_ebst.rebuild(())


def test_an_e_bst_pickled_the_old_way_still_loads() -> None:
    """Artifacts and checkpoints written before the flat form hold the nodes themselves: still readable."""
    model = build_learner(LearnerSpec("hoeffding_tree"), "regression")
    for x, y in _dated(350):
        model.learn_one(x, y)
    assert _roots(model)
    buffer = io.BytesIO()
    old = pickle.Pickler(buffer, protocol=5)
    old.dispatch_table = {}  # without copyreg's entry: the nodes' own slots, recursively
    old.dump(model)
    assert b"flat_ebst" not in buffer.getvalue() and b"EBSTNode" in buffer.getvalue()
    loaded = safe_pickle.RestrictedUnpickler(io.BytesIO(buffer.getvalue())).load()
    assert _rows_of(loaded.model) == _rows_of(model.model)


def test_replay_of_a_dated_regression_stream_completes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The user's path: ``driftline replay`` with the defaults on a CSV whose first column is a date."""
    data = tmp_path / "dated.csv"
    with data.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["ordinal_date", "poll", "approval"])
        for x, y in _dated(1500, seed=1):
            w.writerow([int(x["ordinal_date"]), x["poll"], y])
    cfg = tmp_path / "regression.yaml"
    cfg.write_text("model:\n  task: regression\n")
    argv = ["--config", str(cfg), "replay", "--file", str(data), "--label-col", "approval", "--delay", "20"]
    assert main([*argv, "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["n"] == 1500 and summary["task"] == "regression"
    assert summary["final_version"] > 2
