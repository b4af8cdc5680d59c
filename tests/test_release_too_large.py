"""A release over ``model.max_inline_bytes`` with no ``model.artifact_store`` is withheld (``too_large``), decided
before the lifecycle changes: it used to raise ArtifactError in ``Trainer.publish`` after the lifecycle had moved
to its version, so the trainer's transaction aborted, and redone one record at a time every label was
dead-lettered (fixes33b, item 1)."""

from __future__ import annotations

import random
import tempfile

import pytest

from driftline.config import DriftConfig, GuardConfig, LearnerSpec
from driftline.errors import ArtifactTooLarge
from learners import safe_pickle
from learners.artifacts import build_release, load_release
from learners.lifecycle import ModelLifecycle, Release, Withheld

KEY = b"k" * 32


def _lifecycle(max_payload: int | None) -> ModelLifecycle:
    lc = ModelLifecycle(
        "m",
        "classification",
        LearnerSpec("logistic_regression"),
        None,
        DriftConfig(),
        GuardConfig(),
        release_every=25,
    )
    lc.check_artifacts = True  # as the train worker sets them
    lc.max_payload = max_payload
    return lc


def _growing(lc: ModelLifecycle, rng: random.Random, start: int, n: int) -> list:
    """Labels that each bring a new feature: the linear model's weights (and its artifact) grow."""
    events: list = []
    for i in range(start, start + n):
        x = {"a": rng.uniform(-1, 1), f"f{i}": rng.uniform(-1, 1)}
        events += lc.learn_one(x, int(x["a"] > 0))
    return events


def test_a_release_over_max_inline_bytes_without_a_store_is_withheld_before_anything_changes() -> None:
    limit = 6_000
    lc = _lifecycle(limit)
    first = lc.initial_release()
    assert isinstance(first, Release)
    events = _growing(lc, random.Random(0), 0, 600)
    releases = [first, *(e for e in events if isinstance(e, Release))]
    withheld = [e for e in events if isinstance(e, Withheld)]
    assert withheld, "a release no record could carry was made"
    assert {w.problem for w in withheld} == {"too_large"}
    assert "max_inline_bytes=6000" in withheld[0].message and "model.artifact_store" in withheld[0].message
    # Every release made fits inline and loads; the served version is the last one made.
    for release in releases:
        record = build_release(
            release.model, name="m", version=release.version, parent=release.parent, reason=release.reason,
            metrics=release.metrics, key=KEY, n_learned=int(release.metrics["n_learned"]),
            max_inline_bytes=limit, store=None,
        )  # fmt: skip
        assert record["artifact"] is not None and len(record["artifact"]) <= limit
        load_release(record, key=KEY)
    last = releases[-1]
    assert lc.served_version == last.version and lc.served_model is last.model
    # The champion keeps learning; with room again (a store configured) the next release builds on the served one.
    lc.max_payload = None
    later = [e for e in _growing(lc, random.Random(1), 600, 1_000) if isinstance(e, Release)]
    assert later and later[0].parent == last.version and later[0].version == last.version + 1


def test_the_check_compresses_only_a_pickle_that_may_be_over_the_limit(monkeypatch) -> None:
    lc = _lifecycle(None)
    _growing(lc, random.Random(0), 0, 300)
    model = lc.champion.copy()
    size, _ = safe_pickle.check_loadable(model)
    raw = safe_pickle._MADE[model][0]  # the pickle the release will carry, made once
    assert len(raw) == size
    compressed: list[int] = []
    real = safe_pickle._compress

    def counting(data: bytes) -> bytes:
        compressed.append(len(data))
        return real(data)

    monkeypatch.setattr(safe_pickle, "_compress", counting)
    # Far under the limit: no compression to know it fits (the hot path of every release).
    safe_pickle.check_loadable(model, max_payload=safe_pickle.payload_bound(len(raw)))
    assert compressed == []
    # Its compressed payload fits but the raw pickle may not: compressed once, and the release reuses it.
    payload = real(raw)
    assert len(payload) < len(raw)
    safe_pickle.check_loadable(model, max_payload=len(payload))
    assert compressed == [len(raw)]
    assert safe_pickle.dumps(model) == payload and compressed == [len(raw)]
    # Over it: refused with what to do.
    with pytest.raises(ArtifactTooLarge, match=r"set model\.artifact_store"):
        safe_pickle.check_loadable(model, max_payload=len(payload) - 1)


def test_payload_bound_is_never_under_the_payload() -> None:
    rng = random.Random(3)
    for n in (0, 1, 100, 4_095, 4_096, 70_000, 200_000):
        for data in (bytes(n), rng.randbytes(n)):
            assert len(safe_pickle._compress(data)) <= safe_pickle.payload_bound(n)


def test_the_trainer_withholds_a_release_too_large_to_publish_and_learns_every_label(monkeypatch) -> None:
    import json

    from connectors.batch_source import RawRecord
    from driftline.errors import LearnerError
    from driftline.settings import load_settings
    from schemas.codec import default_codec
    from tests.trainer_helpers import offline_trainer

    key = "too-large-test-signing-key-of-32-bytes!!"
    settings = load_settings(
        environ={},
        overrides={
            "model.signing_key": key,
            "state_dir": tempfile.mkdtemp(prefix="too-large-"),
            "model.learner": {"name": "logistic_regression", "params": {"multiclass": "binary"}},
            "model.max_inline_bytes": 6_000,
            "model.artifact_store": "",
        },
    )
    trainer = offline_trainer(settings)
    assert trainer.store is None
    trainer.start(None, 0)
    rng = random.Random(5)
    records = []
    for i in range(800):
        x = {
            "f0": rng.gauss(0.0, 1.0),
            f"n{i}": rng.gauss(0.0, 1.0),
        }  # a new feature per label: the model grows
        example = {"id": f"e{i}", "model": "default", "features": x, "label": x["f0"] > 0, "event_ts": i}
        records.append((RawRecord("driftline.training", 0, i, b"default", b"", i), example))
    learned = sum(trainer.process(records[k : k + 50]) for k in range(0, len(records), 50))
    assert learned == len(records) and trainer.lifecycle.n_learned == len(records)  # nothing dead-lettered
    codec = default_codec()
    sent = trainer.ctx.out.sent
    assert not [topic for topic, _, _ in sent if topic.endswith("deadletter")]
    published = [codec.decode("ModelRelease", value) for topic, value, _ in sent if topic.endswith("models")]
    versions = [int(r["version"]) for r in published]
    assert versions == list(range(1, len(versions) + 1))
    for record in published:
        assert record["artifact"] is not None and len(record["artifact"]) <= 6_000
        load_release(record, key=key.encode())
    assert trainer.lifecycle.served_version == versions[-1]
    assert trainer.withheld is not None and trainer.withheld["problem"] == "too_large"
    counted = trainer.ctx.metrics.registry.get_sample_value(
        "driftline_releases_withheld_total", {"model": "default", "reason": "too_large"}
    )
    assert counted == trainer.withheld_count >= 1
    # status says it, and what to do.
    text = _status_text(monkeypatch, json.loads(json.dumps(trainer.withheld)), versions[-1])
    assert "WITHHELD by the trainer (too large to publish inline and no artifact store, too_large)" in text
    assert "fix: set model.artifact_store or raise model.max_inline_bytes" in text
    # An operator's promote of the grown champion is refused, not answered "served".
    with pytest.raises(LearnerError, match="release withheld: no record can carry its artifact"):
        trainer.apply("promote", {"candidate": "champion"})
    assert trainer.lifecycle.served_version == versions[-1]


def _status_text(monkeypatch, withheld: dict, served: int) -> str:
    """What ``driftline status`` prints for a trainer whose status holds ``withheld``."""
    from tests.status_helpers import render_status

    live = {"served_version": served, "n_learned": 1, "paused": False, "updated_at": 1, "owner": "t"}
    live["withheld"] = withheld
    return render_status(monkeypatch, served=served, live=live)[1]
