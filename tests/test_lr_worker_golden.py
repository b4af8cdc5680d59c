"""The LR train worker's releases, as the code before session 25 made them (issue 16).

``tests/golden/lr_worker_releases.json`` was written by the code before session 25's changes to the frozen
models' batch path (commit 3f298ed) with ``PYTHONPATH=<that tree> python tests/test_lr_worker_golden.py --write``:
``bench.trainer_split``'s set-up (the bench's rows with the served answers ``driftline bench`` gives them, encoded as
TrainingExamples carrying version 0, so the served snapshot predicts every label through ``BatchContext.frozen``),
then ``Trainer.process`` in batches of 700 into a producer that keeps what it is given. Recorded: every
ModelRelease (version, parent, reason, and a digest of its metrics but the timed latency, to 12 significant digits,
and of the artifact's sha256: the model's own bytes), every DriftEvent's digest, and every audit entry's kind and
the digest of its record (its timed latency dropped). The served snapshot's answers feed the evaluators' metrics
(accuracy, log loss, the confusion counts) at every label, so a changed prediction or probability anywhere shows
up in a release's metrics.

``test_quiet_replay_compat.py`` replays drifting streams through ``learn_batch``; this covers the worker's own path
on the bench's stream, where a release comes every ~25 labels.
"""

from __future__ import annotations

import hashlib
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

GOLDEN = Path(__file__).with_name("golden") / "lr_worker_releases.json"
EVENTS, BATCH = 3_000, 700


def _rounded(value: Any) -> Any:
    # 12 significant digits: a changed prediction or probability moves a metric far more, while another machine's
    # BLAS (the mirrors' matrix products) may differ in a float's last bits.
    if type(value) is float:
        return f"{value:.12g}"
    return value


def _untimed(value: Any) -> Any:
    """``value`` without the keys that hold a timed latency (the only clock in a release)."""
    if isinstance(value, dict):
        return {k: _untimed(v) for k, v in value.items() if "latency" not in str(k)}
    if isinstance(value, list):
        return [_untimed(v) for v in value]
    return _rounded(value)


def record() -> dict[str, Any]:
    from bench.data import answered_examples, make_rows
    from connectors.batch_source import RawRecord
    from driftline.settings import load_settings
    from schemas.codec import default_codec
    from streams import audit as audit_mod
    from streams.runtime import WorkerContext
    from streams.train import Trainer

    settings = load_settings(
        environ={},
        overrides={
            "model.learner": {"name": "logistic_regression", "params": {}},
            "model.signing_key": "k" * 64,
            "state_dir": tempfile.mkdtemp(prefix="lr-worker-golden-"),
        },
    )
    codec = default_codec()
    topic = settings.topic("training")
    values = answered_examples(settings, codec, make_rows(EVENTS, seed=1))
    raws = [RawRecord(topic, 0, i, settings.model.name.encode(), v, 0) for i, v in enumerate(values)]
    decoded = codec.decode_many("TrainingExample", values, topic=topic)
    sent: list[tuple[str, bytes]] = []

    class Keep:
        def produce_bytes(self, topic: str, value: bytes, key: Any = None) -> None:
            sent.append((topic, value))

    ctx = WorkerContext(settings, codec, producer=Keep(), audit_deferred=True)
    audit: list[dict[str, Any]] = []
    log = audit_mod.AuditLog(settings, ctx.model, lambda d, m: None, topic_entries=lambda: [], deferred=True)
    ctx._audit_logs[ctx.model] = log
    trainer = Trainer(ctx, redis_conn=object())
    trainer.lifecycle.initial_release()
    pairs = list(zip(raws, decoded, strict=True))
    for k in range(0, EVENTS, BATCH):
        trainer.process(pairs[k : k + BATCH])
        audit.extend({"kind": e["kind"], "record": _untimed(e["record"])} for e in _entries(log))
    releases, drift = [], []
    for out_topic, value in sent:
        if out_topic == settings.topic("models"):
            r = codec.decode("ModelRelease", value, topic=out_topic)
            releases.append(
                {
                    "version": r["version"],
                    "parent": r["parent"],
                    "reason": r["reason"],
                    "metrics": _untimed(dict(r["metrics"])),
                    "artifact_sha256": hashlib.sha256(r["artifact"] or b"").hexdigest(),
                }
            )
        elif out_topic == settings.topic("drift"):
            d = codec.decode("DriftEvent", value, topic=out_topic)
            drift.append({k: _untimed(v) for k, v in d.items() if k != "ts"})
    return {
        "served_version": trainer.lifecycle.served_version,
        "releases": [_short(r) for r in releases],
        "drift": [_digest(d) for d in drift],
        "audit": [{"kind": a["kind"], "digest": _digest(a["record"])} for a in audit],
    }


def _digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()[:24]


def _short(release: dict[str, Any]) -> dict[str, Any]:
    """A release as kept in the golden file: what a reader checks by eye, and a digest of everything (every
    metric, to 12 significant digits, and the artifact's sha256)."""
    metrics = release["metrics"]
    return {
        "version": release["version"],
        "parent": release["parent"],
        "reason": release["reason"],
        "n_learned": metrics.get("n_learned"),
        "accuracy": metrics.get("accuracy"),
        "digest": _digest(release),
    }


def _entries(log: Any) -> list[dict[str, Any]]:
    """The audit lines the log holds for its next flush (one JSON line per entry), parsed, and the log emptied."""
    lines = list(log._pending)
    log._pending.clear()
    return [json.loads(line) for line in lines]


def test_the_lr_worker_releases_as_before() -> None:
    want = json.loads(GOLDEN.read_text())
    got = json.loads(json.dumps(record()))
    assert got["served_version"] == want["served_version"]
    assert len(got["releases"]) == len(want["releases"]) > 50  # (a release every ~25 labels)
    for g, w in zip(got["releases"], want["releases"], strict=True):
        assert g == w
    assert got["drift"] == want["drift"]
    assert len(got["audit"]) == len(want["audit"])
    for g, w in zip(got["audit"], want["audit"], strict=True):
        assert g == w


if __name__ == "__main__" and "--write" in sys.argv:
    GOLDEN.write_text(json.dumps(record(), indent=None, separators=(",", ":")) + "\n")
    print(f"wrote {GOLDEN}")
