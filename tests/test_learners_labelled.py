"""``Labelled`` (the train worker's example for ``ModelLifecycle.learn_batch``) is a named tuple since session 22:
``learn_batch`` passes it to the per-label step unpacked, so its fields must be the step's arguments, in order."""

from __future__ import annotations

import inspect

from learners.lifecycle import Labelled, ModelLifecycle


def test_the_fields_are_the_per_label_steps_arguments_in_order() -> None:
    step = list(inspect.signature(ModelLifecycle._step).parameters)
    assert step[0] == "self" and step[-2:] == ["batch", "pos"]
    assert list(Labelled._fields) == step[1:-2]
    learn_one = [p for p in inspect.signature(ModelLifecycle.learn_one).parameters if p != "self"]
    assert learn_one == ["x", "y", "served_prediction", "served_version", "served_proba", "index", "ts"]
    assert len(Labelled._fields) == len(learn_one)


def test_it_unpacks_to_what_it_was_given_with_learn_one_s_defaults() -> None:
    x = {"a": 1.0}
    e = Labelled(x, True, served_version=3, index=9)
    assert tuple(e) == (x, True, None, 3, None, 9, None)
    assert (e.x, e.y, e.served_prediction, e.served_version, e.served_proba, e.index, e.ts) == tuple(e)
