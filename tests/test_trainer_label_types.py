"""A label whose type cannot be ordered with the model's classes ("zzz" where 0/1 came) must not poison learning.

River's classifiers keep their classes sorted (``sorted(self.classes)`` in the Hoeffding tree's
``predict_proba_one``): once a string class sits next to numeric ones, every later prediction raises
``TypeError: '<' not supported between instances of 'str' and 'int'``, so every later TrainingExample of that
model was dead-lettered and learning stopped for good (found by publishing one such label on ``labels``). The
trainer refuses (dead-letters, with the reason) a label of the other kind, and keeps learning the rest.
"""

from __future__ import annotations

import tempfile
from typing import Any

import pytest

from tests.conftest import KAFKA_BOOTSTRAP
from tests.trainer_helpers import dead_letters, label_records, offline_trainer

KEY = "trainer-label-types-signing-key-32-bytes!!"


def _trainer() -> Any:
    from driftline.settings import load_settings

    s = load_settings(
        environ={},
        overrides={
            "model.signing_key": KEY,
            "state_dir": tempfile.mkdtemp(prefix="trainer-label-types-"),
            # The dead-letter path reads a topic's size limit: from the tests' broker, not the settings' default.
            "kafka.bootstrap": KAFKA_BOOTSTRAP,
        },
    )
    trainer = offline_trainer(s)
    trainer.start(None, 0)
    return trainer


@pytest.mark.parametrize("batched", [True, False])
@pytest.mark.parametrize(
    ("usual", "odd"),
    [([0, 1], "zzz"), (["no", "yes"], 1), ([False, True], "maybe"), ([0.0, 1.0], "1.5")],
)
def test_a_label_of_another_kind_is_refused_and_learning_goes_on(
    batched: bool, usual: list[Any], odd: Any
) -> None:
    trainer = _trainer()
    before = label_records([usual[i % 2] for i in range(300)])
    bad = label_records([odd], start=300)
    after = label_records([usual[i % 2] for i in range(200)], start=301)
    for part in (before, bad, after):
        if batched:
            trainer.process(part)
        else:
            for raw, example in part:
                trainer.learn(raw, example)
    dead = dead_letters(trainer)
    assert [d["offset"] for d in dead] == [300]  # the odd label only, nothing after it
    assert "label" in dead[0]["error"] and repr(odd)[:10] in dead[0]["error"]
    assert trainer.lifecycle.n_learned == 500
    assert trainer.index == 501  # the refused label takes its index, as any record the learner cannot take


@pytest.mark.parametrize("batched", [True, False])
@pytest.mark.parametrize(
    ("usual", "quoted", "learned"),
    [([0, 1], ["1", "0"], [1, 0]), (["0", "1"], [1, 0], ["1", "0"]), ([0.0, 1.0], ["1.0"], [1.0])],
)
def test_a_known_class_quoted_the_other_way_is_learned_as_that_class(
    batched: bool, usual: list[Any], quoted: list[Any], learned: list[Any]
) -> None:
    """Two producers of one model's labels, one quoting them (`"1"` from a shell, JSON on `labels`) and one not
    (`1` from a CSV): every quoted label was dead-lettered as the other kind. A label whose text is a class the
    model knows is learned as that class, in the model's kind, whatever the batch's size: in the first batch too."""
    trainer = _trainer()
    records = label_records([usual[i % 2] for i in range(100)] + quoted * 50)
    learned_labels: list[Any] = []
    learn_batch = trainer.lifecycle.learn_batch
    trainer.lifecycle.learn_batch = lambda rows: learned_labels.extend(r.y for r in rows) or learn_batch(rows)
    learn_one = trainer.lifecycle.learn_one
    trainer.lifecycle.learn_one = lambda x, y, **kw: learned_labels.append(y) or learn_one(x, y, **kw)
    if batched:
        trainer.process(records)
    else:
        for raw, example in records:
            trainer.learn(raw, example)
    assert dead_letters(trainer) == []
    assert learned_labels[100:] == learned * 50
    assert {type(y) for y in learned_labels} == {type(usual[0])}
    assert trainer.lifecycle.n_learned == len(records)


def test_numbers_and_booleans_mix_without_refusal() -> None:
    """bool is an int in Python: 0/1 and False/True order fine together (the CSV/JSONL mix of the quick start)."""
    trainer = _trainer()
    trainer.process(label_records([i % 2 for i in range(200)] + [bool(i % 2) for i in range(200)]))
    assert dead_letters(trainer) == []
    assert trainer.lifecycle.n_learned == 400


def test_a_huge_text_label_is_refused_and_new_class_events_stay_small() -> None:
    """A class name of 600 KB would sit in every Prediction's ``proba`` map (two of them: every Prediction over
    ``serving.max_record_bytes``, so every event dead-lettered), and its ``label:new_class`` DriftEvent (which
    lists known classes) went over the record limit and raised out of the trainer's batch."""
    from schemas.codec import default_codec

    trainer = _trainer()
    trainer.process(label_records(["no", "yes"] * 60))
    trainer.process(label_records(["L" * 600_000, "M" * 600_000, "c" * 1024], start=120))
    trainer.process(label_records(["no", "yes"] * 10, start=123))
    assert [d["offset"] for d in dead_letters(trainer)] == [120, 121]
    assert trainer.lifecycle.n_learned == 120 + 1 + 20
    codec = default_codec()
    drift = [codec.decode("DriftEvent", v) for t, v, _ in trainer.ctx.out.sent if t.endswith("drift")]
    new_class = [d for d in drift if d["signal"] == "label:new_class"]
    assert new_class and all(len(str(d["details"])) < 1000 for d in new_class)


def test_a_new_class_past_the_class_bounds_is_refused_a_known_one_is_not() -> None:
    """Every Prediction carries a probability per class: 2,600 distinct 400-character labels grew each one's
    ``proba`` map past 200 KB on its way to the record limit (every event dead-lettered then). A new class past
    ``MAX_MODEL_CLASSES`` classes, or past ``MAX_CLASS_CHARS`` characters of class names in all, is refused."""
    from streams.watch import MAX_CLASS_CHARS, MAX_MODEL_CLASSES, InputWatch

    watch = InputWatch("classification")
    labels = [f"c{i}" for i in range(MAX_MODEL_CLASSES)]
    assert all(watch.refuse_label(y) is None for y in labels)
    watch.check_many([({}, y) for y in labels], 0)
    assert len(watch.classes) == MAX_MODEL_CLASSES
    why = watch.refuse_label("one-more")
    assert why is not None and "new class" in why and str(MAX_MODEL_CLASSES) in why
    assert watch.refuse_label("c7") is None  # a known class is learned as before

    long_names = InputWatch("classification")
    names = [f"{i:04d}" + "n" * 996 for i in range(MAX_CLASS_CHARS // 1000)]  # 1,000 characters each
    long_names.check_many([({}, y) for y in names], 0)
    assert long_names.refuse_label("x" * 10) is not None  # the names' budget is spent, though 200 < 1,000
    assert long_names.refuse_label(names[0]) is None
    assert InputWatch("regression").refuse_label(123.5) is None  # regression labels are not classes


@pytest.mark.parametrize("batched", [True, False])
def test_one_off_labels_in_one_batch_stop_at_the_class_bound_as_one_by_one(batched: bool) -> None:
    """A burst of one-off labels (an id sent as the label) made a tree or naive Bayes model slow for good: each
    class stays in the model and costs every prediction, past the guard's latency budget at ~1,000, so every later
    candidate was rejected and the model never released again (session 44, docs/experiments/adv44.md). The class
    bound holds for a batch too: its labels are admitted before the watch sees any, and a batch admitted all of
    its new classes, however many (300 here, with the bound at 100)."""
    from learners.specs import MAX_MODEL_CLASSES

    trainer = _trainer()
    trainer.process(label_records(["no", "yes"] * 30))
    burst = label_records([f"id-{i}" for i in range(300)], start=60)
    if batched:
        trainer.process(burst)
    else:
        for part in burst:
            trainer.process([part])
    dead = dead_letters(trainer)
    assert len(dead) == 300 - (MAX_MODEL_CLASSES - 2)
    assert all("new class" in d["error"] and "'other'" in d["error"] for d in dead)
    assert len(trainer.watch.classes) == MAX_MODEL_CLASSES
    trainer.process(label_records(["no", "yes"] * 30, start=360))  # the known classes are learned as before
    assert len(dead_letters(trainer)) == len(dead)


def _regression_trainer() -> Any:
    from driftline.settings import load_settings

    s = load_settings(
        environ={},
        overrides={
            "model.signing_key": KEY,
            "model.task": "regression",
            "state_dir": tempfile.mkdtemp(prefix="trainer-label-types-"),
        },
    )
    trainer = offline_trainer(s)
    trainer.start(None, 0)
    return trainer


@pytest.mark.parametrize("batched", [True, False])
@pytest.mark.parametrize("odd", ["abc", True, "NaN", "inf", ""])
def test_a_regression_label_that_is_no_number_is_refused_and_learning_goes_on(
    batched: bool, odd: Any
) -> None:
    """Outside, session 33: a regression model's trainer took "abc" (or true, or "NaN") on `labels`, joined it,
    counted it learned and ignored it: no dead letter, no reason, the producer's bug invisible. It is refused like a
    classification label of the other kind: dead-lettered with the reason, not counted in n_learned."""
    trainer = _regression_trainer()
    before = label_records([float(i % 7) for i in range(300)])
    bad = label_records([odd], start=300)
    after = label_records([float(i % 7) for i in range(200)], start=301)
    for part in (before, bad, after):
        if batched:
            trainer.process(part)
        else:
            for raw, example in part:
                trainer.learn(raw, example)
    dead = dead_letters(trainer)
    assert [d["offset"] for d in dead] == [300]
    assert "regression" in dead[0]["error"] and repr(odd)[:10] in dead[0]["error"]
    assert trainer.lifecycle.n_learned == 500
    assert trainer.index == 501


@pytest.mark.parametrize("batched", [True, False])
def test_a_quoted_number_is_learned_as_a_regression_target(batched: bool) -> None:
    """A producer that quotes its numbers ("12.5" from a shell) is learned as 12.5, as a classifier learns "1"
    where 1 was learned."""
    trainer = _regression_trainer()
    records = label_records([float(i % 7) for i in range(100)] + ["12.5", "-3", "4e1"] * 20)
    learned_labels: list[Any] = []
    learn_batch = trainer.lifecycle.learn_batch
    trainer.lifecycle.learn_batch = lambda rows: learned_labels.extend(r.y for r in rows) or learn_batch(rows)
    learn_one = trainer.lifecycle.learn_one
    trainer.lifecycle.learn_one = lambda x, y, **kw: learned_labels.append(y) or learn_one(x, y, **kw)
    if batched:
        trainer.process(records)
    else:
        for raw, example in records:
            trainer.learn(raw, example)
    assert dead_letters(trainer) == []
    assert learned_labels[100:] == [12.5, -3.0, 40.0] * 20
    assert trainer.lifecycle.n_learned == len(records)


@pytest.mark.parametrize("batched", [True, False])
@pytest.mark.parametrize("odd", [1e200, -1.7e308, "1e200"])
def test_a_regression_label_too_large_to_square_is_refused_and_learning_goes_on(
    batched: bool, odd: Any
) -> None:
    """Outside, session 42: one label of 1e200 (a finite double, valid on the wire) on `labels` of a regression
    model whose learner is the default ``auto`` pool: the pool's tree answered ~1e197 from then on, whose square
    overflowed the guard's evidence (OverflowError) on every later label, so every later TrainingExample of that
    model was dead-lettered and learning stopped for good. It is refused (dead-lettered, with the reason) instead."""
    trainer = _regression_trainer()
    before = label_records([float(i % 7) for i in range(300)])
    bad = label_records([odd], start=300)
    after = label_records([float(i % 7) for i in range(200)], start=301)
    for part in (before, bad, after):
        if batched:
            trainer.process(part)
        else:
            for raw, example in part:
                trainer.learn(raw, example)
    dead = dead_letters(trainer)
    assert [d["offset"] for d in dead] == [300], [d["error"][:120] for d in dead[:3]]
    assert "squared errors overflow" in dead[0]["error"]
    assert trainer.lifecycle.n_learned == 500
