"""River's extended binary search trees pickled flat, so a feature that only grows cannot break a pickle.

Why: River's regression trees keep, per leaf and numeric feature, an E-BST of the values seen (``EBSTNode``, in
``TEBSTSplitter``). A feature that only grows (a date, a counter, an id) turns that tree into a chain with one node
per distinct value, and pickle recurses through the chain, several frames per node. On River's TrumpApproval
(``ordinal_date``) the default ``auto`` regressor's release pickle raised ``RecursionError`` after ~600 labels, and
``driftline replay`` crashed; a trainer's checkpoint (plain :func:`pickle.dumps`) would have failed the same way.

Importing this module registers :func:`_reduce` with :mod:`copyreg` for ``EBSTNode``, so every pickler (release
artifacts, ``Learner.copy``, trainer checkpoints) writes a node's subtree as a flat tuple of rows, and loading
rebuilds it in a loop (:func:`rebuild`, allow-listed for model artifacts). Pickles written before this change (the
node's own slots, recursively) still load. ``learners.specs`` imports this module, so any process that builds a
learner has it registered. River's own ``EBSTNode.__deepcopy__`` is already iterative.
"""

from __future__ import annotations

import copyreg
from typing import Any

from driftline.errors import SecurityError

Row = tuple[Any, Any, bool, int, int]  # (att_val, estimator, multivariate, left row, right row); -1: no child


def _node_type() -> Any:
    from river.tree.splitter.ebst_splitter import EBSTNode

    return EBSTNode


def flatten(root: Any) -> tuple[Row, ...]:
    """``root``'s subtree as rows in pre-order (a child's row always after its parent's), without recursion."""
    multivariate = _node_type()._update_estimator_multivariate
    rows: list[list[Any]] = []
    stack: list[tuple[Any, int, int]] = [(root, -1, 0)]  # node, its parent's row, 3 (left) or 4 (right)
    while stack:
        node, parent, side = stack.pop()
        if parent >= 0:
            rows[parent][side] = len(rows)
        rows.append([node.att_val, node.estimator, node._update_estimator is multivariate, -1, -1])
        if node._right is not None:
            stack.append((node._right, len(rows) - 1, 4))
        if node._left is not None:
            stack.append((node._left, len(rows) - 1, 3))
    return tuple((a, e, m, left, right) for a, e, m, left, right in rows)


def rebuild(rows: tuple[Row, ...]) -> Any:
    """The root of the E-BST that :func:`flatten` wrote. A row must point only at later rows, each row has one
    parent at most: a crafted pickle cannot make a cycle or a shared subtree (River's code would loop on them)."""
    cls = _node_type()
    if type(rows) is not tuple or not rows:
        raise SecurityError("E-BST rows must be a non-empty tuple")
    nodes = []
    for row in rows:
        if type(row) is not tuple or len(row) != 5 or type(row[2]) is not bool:
            raise SecurityError("an E-BST row must be (value, estimator, multivariate, left, right)")
        node = cls.__new__(cls)
        node.att_val, node.estimator = row[0], row[1]
        node._update_estimator = (
            cls._update_estimator_multivariate if row[2] else cls._update_estimator_univariate
        )
        node._left = node._right = None
        nodes.append(node)
    taken: set[int] = set()
    for i, (_, _, _, left, right) in enumerate(rows):
        for child, side in ((left, "_left"), (right, "_right")):
            if child == -1 and type(child) is int:
                continue
            if type(child) is not int or not i < child < len(rows) or child in taken:
                raise SecurityError(f"E-BST row {i} points at {child!r}: not a later, unclaimed row")
            taken.add(child)
            setattr(nodes[i], side, nodes[child])
    return nodes[0]


def _reduce(node: Any) -> tuple[Any, tuple[tuple[Row, ...]]]:
    return rebuild, (flatten(node),)


def register() -> None:
    """Route every pickler's ``EBSTNode`` through :func:`_reduce` (idempotent)."""
    copyreg.pickle(_node_type(), _reduce)


register()
