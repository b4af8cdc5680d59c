"""A regression label a learner cannot take (a negative count for a Poisson loss) is refused before it is learned.

scikit-learn refuses a whole Poisson (or gamma) fit for one label of the wrong sign, so a ``window_refit`` learner
that learned one failed every refit while that label stayed in its window: the label whose learning triggered the
refit was dead-lettered each time (an innocent one), the model kept its old fit, and ``driftline replay`` ended at
the first refit with a ValueError traceback (session 45, docs/experiments/adv45.md). The trainer dead-letters the
label itself, naming the learner's requirement, and replay leaves it unlearned and counts it, as it does a label of a
new class past the class bound.
"""

from __future__ import annotations

import json
import random
import tempfile
from pathlib import Path
from typing import Any

import pytest

from driftline.config import LearnerSpec
from streams.cli import main
from tests.conftest import KAFKA_BOOTSTRAP
from tests.trainer_helpers import dead_letters, label_records, offline_trainer

KEY = "trainer-label-floor-signing-key-32-bytes!!"
POISSON = {
    "name": "window_refit",
    "params": {
        "estimator": "decision_tree",
        "params": {"criterion": "poisson", "max_depth": 4},
        "window": 50,
        "every": 10,
    },
}


def _trainer() -> Any:
    from driftline.settings import load_settings

    s = load_settings(
        environ={},
        overrides={
            "model.signing_key": KEY,
            # The dead-letter path reads a topic's size limit: from the tests' broker, not the settings' default.
            "kafka.bootstrap": KAFKA_BOOTSTRAP,
            "model.task": "regression",
            "model.learner": POISSON,
            "state_dir": tempfile.mkdtemp(prefix="trainer-label-floor-"),
        },
    )
    trainer = offline_trainer(s)
    trainer.start(None, 0)
    return trainer


@pytest.mark.parametrize("batched", [True, False])
def test_a_negative_label_for_a_poisson_learner_is_dead_lettered_and_the_rest_learned(batched: bool) -> None:
    trainer = _trainer()
    counts = [float(k % 7) for k in range(40)]
    labels = [*counts, -1.0, -3.0, *counts, *counts]
    records = label_records(labels)
    if batched:
        trainer.process(records)
    else:
        for record in records:
            trainer.process([record])
    dead = dead_letters(trainer)
    # Only the two negative labels; before, every refit while they sat in the window failed, and the label that
    # triggered it was dead-lettered instead (8 of the 80 labels after them here).
    why = (
        "learner 'window_refit' (decision_tree's poisson criterion) learns only labels 0 or more: send counts or "
        "amounts of that sign, or choose another loss (squared_error takes any number)"
    )
    assert [d["error"] for d in dead] == [
        f"ValueError: refused label -1.0: {why}",
        f"ValueError: refused label -3.0: {why}",
    ]
    assert trainer.lifecycle.n_learned == len(labels) - 2


def test_a_gamma_loss_refuses_zero_and_an_auto_pool_takes_its_strictest_member() -> None:
    from learners.specs import refuse_label

    gamma = LearnerSpec("window_refit", {"estimator": "hist_gradient_boosting", "params": {"loss": "gamma"}})
    assert refuse_label((gamma,), "regression", 0.0) is not None
    assert refuse_label((gamma,), "regression", 0.5) is None
    pool = LearnerSpec("auto", {"members": [{"name": "linear_regression"}, POISSON]})
    assert refuse_label((pool,), "regression", -0.5) is not None
    assert refuse_label((pool,), "regression", 0.0) is None
    assert refuse_label((LearnerSpec("window_refit"),), "regression", -5.0) is None  # ridge takes any number


def test_a_window_of_zeros_answers_zero_instead_of_failing_the_poisson_fit() -> None:
    """scikit-learn also refuses a Poisson fit whose labels sum to 0 (a window of rare-event counts, all 0)."""
    from learners.specs import build_learner

    model = build_learner(LearnerSpec(POISSON["name"], POISSON["params"]), "regression")
    for k in range(60):
        model.learn_one({"x1": k / 60}, 0.0)
    assert model.predict_one({"x1": 0.5}) == 0.0
    model.learn_one({"x1": 0.5}, 3.0)
    for k in range(20):
        model.learn_one({"x1": k / 20}, float(k % 3))
    assert model.predict_one({"x1": 0.5}) > 0.0


def test_replay_leaves_a_negative_label_unlearned_and_counts_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Replay learns what the trainer learns (it ended at the first refit with a ValueError traceback)."""
    config = tmp_path / "settings.yaml"
    config.write_text(f"model:\n  task: regression\n  learner: {json.dumps(POISSON)}\n")
    monkeypatch.setenv("DRIFTLINE_CONFIG", str(config))
    rng = random.Random(3)
    path = tmp_path / "counts.jsonl"
    with path.open("w") as f:
        for i in range(300):
            a = rng.random()
            y = -1.0 if i in (100, 101, 102) else float(int(a * 10))
            f.write(json.dumps({"id": f"e{i}", "a": a, "y": y}) + "\n")
    assert (
        main(["replay", "--file", str(path), "--label-col", "y", "--delay", "5", "--no-plain", "--json"]) == 0
    )
    out = json.loads(capsys.readouterr().out)
    assert out["refused_labels"] == 3
    assert out["n_learned"] == 297
