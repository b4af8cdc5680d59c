"""Trainer checkpoints written by the previous release restore and keep learning with today's code.

A trainer keeps each model's state as its latest record on the compacted ``changelog`` topic: the dict of
:meth:`streams.train.Trainer.state` (the pickled :class:`learners.lifecycle.ModelLifecycle` with its drift
monitors, sentinel copies and policies' evidence, the offsets, the recent ids, ...), sealed by
:func:`streams.train.seal`. After an upgrade the new code restores it with :func:`streams.train.unseal` (the
HMAC checked before the pickle is read) and :meth:`Trainer.start` (what ``TrainerGroup._trainer`` does), so every
attribute added to a pickled class since needs a class-level default.

``tests/golden/checkpoints.json`` holds such records written by the code of the previous release (commit
a66c536), one for a default classification model (the ``auto`` learner) and one for a regression model, each
after a few thousand labels of a fixed synthetic stream (see ``PLAN``). Re-create it with that tree on the path::

    git worktree add --detach /tmp/ckpt-base a66c536
    PYTHONPATH=/tmp/ckpt-base .venv/bin/python tests/test_checkpoint_compat.py --write
    git worktree remove /tmp/ckpt-base

Each record is stored xz-compressed and base64-encoded (its bytes are restored exactly), with facts read from
the old trainer when it wrote them, which the restored one must show.
"""

from __future__ import annotations

import base64
import json
import lzma
import math
import random
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest

from tests.trainer_helpers import offline_trainer

GOLDEN = Path(__file__).with_name("golden") / "checkpoints.json"
KEY = b"checkpoint-compat-signing-key-of-32-bytes"
TOPIC = "driftline.training"
MORE = 2000  # labels learned after the restore
# Per task: the least labels in the golden checkpoint, and the labels at which the concept changes before it (it
# changes again MORE // 2 labels after it). Classification: no drift before, so at 4,500 the sentinel holds two
# copies, one warmed up and one in its warm-up. Regression: after the drift, the checkpoint is written at the
# first batch's end when the loss monitor is in a new warm-up (state the old code pickled without today's
# attributes) and no challenger runs (whose promotion would start the monitor over again before the restored one
# is used).
PLAN = {"classification": (4500, ()), "regression": (3000, (2000,))}
BATCH = 50  # TrainingExamples per trainer batch


def _row(rng: random.Random, task: str, concept: int) -> tuple[dict[str, Any], Any]:
    x: dict[str, Any] = {f"f{k}": rng.gauss(0.0, 1.0) for k in range(5)}
    x["colour"] = rng.choice(["red", "green", "blue"])
    sign = 1.0 if concept % 2 == 0 else -1.0
    if task == "classification":
        noisy = rng.random() < 0.05
        return x, int((sign * x["f0"] + 0.5 * x["f1"] > 0) != noisy)
    return x, sign * 3.0 * x["f0"] - 2.0 * x["f1"] + (x["colour"] == "red") + rng.gauss(0.0, 0.3)


def _examples(task: str, start: int, n: int, model: str, restored_at: int | None = None) -> list[Any]:
    """TrainingExamples ``start`` to ``start + n`` of the fixed stream of ``task`` (drifts as ``PLAN`` says, and
    MORE // 2 labels after ``restored_at``), as the trainer receives them: raw record and decoded value."""
    from connectors.batch_source import RawRecord

    out = []
    for i in range(start, start + n):
        concept = sum(i >= at for at in PLAN[task][1]) + (
            restored_at is not None and i >= restored_at + MORE // 2
        )
        x, y = _row(random.Random(f"{task}-{i}"), task, concept)  # example i is the same however it is cut
        example = {"id": f"{model}-{i}", "model": model, "features": x, "label": y, "event_ts": 1_000 * i}
        out.append((RawRecord(TOPIC, 0, i, model.encode(), b"", 1_000 * i), example))
    return out


def _trainer(task: str, state_dir: str) -> Any:
    """A trainer of model ``task`` on default settings (the ``auto`` learner), its output captured."""
    from driftline.settings import load_settings

    s = load_settings(
        environ={},
        overrides={
            "model.signing_key": KEY.decode(),
            "state_dir": state_dir,
            "model.name": task,
            "model.task": task,
        },
    )
    return offline_trainer(s)


def _learn(trainer: Any, examples: list[Any]) -> int:
    learned = 0
    for k in range(0, len(examples), BATCH):
        learned += trainer.process(examples[k : k + BATCH])
    return learned


def _facts(trainer: Any) -> dict[str, Any]:
    """What a restore must keep, read from a trainer (the same reads in the old code and today's)."""
    lc = trainer.lifecycle
    loss = lc._loss_monitor._detector
    sentinel = lc._sentinel
    return {
        "served_version": lc.served_version,
        "n_learned": lc.n_learned,
        "index": trainer.index,
        "offsets": trainer.offsets,
        "seen": len(trainer.seen),
        "evaluated": lc.evaluation.n,
        "loss_detector": {
            "warm": loss.detector is not None,
            "n": loss.var.n,
            "mean": loss.mean,
            "std": loss.std,
        },
        "sentinel": None
        if sentinel is None
        else [[c.test.n, c.test.p0, c.test.errors] for c in sentinel.copies],
        "increment": [lc._increment.evidence.n, lc._increment.evidence.not_worse.log_wealth],
    }


def build_golden() -> dict[str, Any]:
    from streams.train import seal

    out = {}
    for task in ("classification", "regression"):
        with tempfile.TemporaryDirectory() as state_dir:
            trainer = _trainer(task, state_dir)
            trainer.start(None, 0)  # publishes v1
            labels = PLAN[task][0]
            assert _learn(trainer, _examples(task, 0, labels, task)) == labels
            lc = trainer.lifecycle
            while task == "regression" and not (
                lc._loss_monitor._detector.detector is None
                and lc._loss_monitor._settle == 0
                and 0 < lc._loss_monitor._detector.var.n < 80
                and lc._challenger.lineage is None
            ):
                assert labels < 8000, "no checkpoint with the loss monitor in its warm-up"
                labels += _learn(trainer, _examples(task, labels, BATCH, task))
            facts = _facts(trainer)
            # What the PLAN is for (a re-run must not lose it silently).
            if task == "classification":
                assert [math.isnan(p0) for _, p0, _ in facts["sentinel"]] == [False, True], facts
            sealed = seal(trainer.state(), KEY)
            out[task] = {
                "sealed": base64.b64encode(lzma.compress(sealed, preset=9 | lzma.PRESET_EXTREME)).decode(),
                "facts": json.loads(json.dumps(facts)),
            }
    return out


def _golden(task: str) -> tuple[bytes, dict[str, Any]]:
    record = json.loads(GOLDEN.read_text(encoding="utf-8"))[task]
    return lzma.decompress(base64.b64decode(record["sealed"])), record["facts"]


def _canonical(facts: dict[str, Any]) -> str:
    return json.dumps(facts, sort_keys=True)  # NaN (a copy's p0 before its warm-up) is not equal to itself


def _sent(trainer: Any, topic: str) -> list[dict[str, Any]]:
    from schemas.codec import TOPIC_RECORDS

    ctx = trainer.ctx
    name = ctx.settings.topic(topic)
    return [
        ctx.codec.decode(TOPIC_RECORDS[topic], value, topic=name)
        for sent, value, _ in ctx.producer.sent
        if sent == name
    ]


@pytest.mark.parametrize("task", sorted(PLAN))
def test_previous_release_checkpoint_restores_and_keeps_learning(task: str, tmp_path: Path) -> None:
    """Restored as ``TrainerGroup._trainer`` restores (unseal with the current and previous keys, then
    ``Trainer.start`` with the newest release), the old trainer's state is all there; the trainer then learns
    through a drift, releases (records that verify and load), raises the alarm, and checkpoints again."""
    from learners.artifacts import load_release
    from learners.lifecycle import ModelLifecycle
    from learners.specs import Learner
    from streams.train import seal, unseal

    sealed, facts = _golden(task)
    labels = facts["n_learned"]
    assert labels >= PLAN[task][0]
    state = unseal(sealed, [KEY, b""], f"changelog record of {task!r}")
    trainer = _trainer(task, str(tmp_path))
    trainer.start(state, facts["served_version"])
    lc = trainer.lifecycle
    assert isinstance(lc, ModelLifecycle)
    assert _canonical(json.loads(json.dumps(_facts(trainer)))) == _canonical(facts)

    # The loss monitor learned its task on restore: its next warm-up gets the classification floor.
    assert lc._loss_monitor.task == task

    # The offsets and recent ids survived: a redelivered batch from before the checkpoint is skipped.
    assert trainer.process(_examples(task, labels - BATCH, BATCH, task)) == 0
    # Before the next drift: what was mid-warm-up in the old state finishes it under today's rules.
    restored = lc._loss_monitor._detector
    first = 600 if task == "classification" else 100
    assert _learn(trainer, _examples(task, labels, first, task, labels)) == first
    if task == "classification":  # the copy 500 labels into its warm-up fixed its p0 (the upper-bound rule)
        assert lc._sentinel is not None
        copies = [(c.test.n, c.test.p0, c.test.errors) for c in lc._sentinel.copies]
        n = facts["sentinel"][1][0] + first
        assert [c for c in copies if c[0] == n and c[1] > (c[2] + 1) / (c[0] + 2)], copies
    else:  # the loss detector's warm-up after the old trainer's alarm completed (it started with no peak)
        assert restored is lc._loss_monitor._detector and restored.detector is not None
        assert restored.var.n == restored.warmup
    assert _learn(trainer, _examples(task, labels + first, MORE - first, task, labels)) == MORE - first
    assert (lc.n_learned, trainer.index) == (labels + MORE, labels + MORE)

    releases = _sent(trainer, "models")
    versions = [int(r["version"]) for r in releases]
    assert versions and versions[0] == facts["served_version"] + 1, versions
    assert versions == sorted(versions) and lc.served_version == versions[-1]
    for record in releases[-3:]:  # the restricted unpickler of the release path takes what was learned since
        header, model = load_release(record, key=KEY)
        assert header.n_learned > labels
        assert (
            isinstance(model, Learner)
            and model.predict_one(_examples(task, 0, 1, task)[0][1]["features"]) is not None
        )
    drifts = [d for d in _sent(trainer, "drift") if int(d["index"]) >= labels + MORE // 2]
    assert drifts, "no drift alarm after the restore's drift"
    snapshot = lc.snapshot_metrics()
    assert snapshot and all(isinstance(v, float) and not math.isnan(v) for v in snapshot.values()), snapshot

    # Today's checkpoint of the restored trainer seals and restores in turn.
    again = _trainer(task, str(tmp_path))
    again.start(unseal(seal(trainer.state(), KEY), [KEY], "changelog"), lc.served_version)
    assert _canonical(_facts(again)) == _canonical(_facts(trainer))


def test_tampered_or_forged_golden_checkpoint_is_refused() -> None:
    from driftline.errors import SecurityError
    from streams.train import unseal

    sealed, _ = _golden("classification")
    assert unseal(sealed, [KEY], "changelog")["model"] == "classification"
    at = len(sealed) - 1000  # one byte of the pickle
    tampered = sealed[:at] + bytes([sealed[at] ^ 1]) + sealed[at + 1 :]
    with pytest.raises(SecurityError, match="signature mismatch"):
        unseal(tampered, [KEY], "changelog")
    with pytest.raises(SecurityError, match="signature mismatch"):
        unseal(sealed, [b"another-key-of-32-bytes-or-more-than-that"], "changelog")


if __name__ == "__main__" and sys.argv[1:] == ["--write"]:
    GOLDEN.parent.mkdir(exist_ok=True)
    GOLDEN.write_text(json.dumps(build_golden(), indent=1, sort_keys=True) + "\n", encoding="utf-8")
    print(f"wrote {GOLDEN} ({GOLDEN.stat().st_size} bytes)")
