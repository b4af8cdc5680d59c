"""Canonical texts made once and spliced in (session 38): the trainer writes a release's metrics in its signed
header and its audit entry, and the guard's decision in two audit entries; the spliced texts are the encoder's."""

from __future__ import annotations

import enum
import json
import math
import tempfile
from typing import Any

import pytest

from driftline import audit_chain
from driftline.audit_chain import canonical_text

_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)

VALUES: list[dict[str, Any]] = [
    {},
    {"b": 1.5, "a": -0.0, "é": 'ü\n"', "z": None, "t": True, "f": False, "i": 3, "big": 10**30},
    {
        "metrics": {"x": 0.1, "n": 3.0, "nan": math.nan, "inf": math.inf},
        "decision": {"e": [1, 2.5, {"k": "v"}]},
    },
    {"Z": [], "a": {}, "A": [[]], "_": {"b": {"a": 1e-300}}, "10": 1, "9": 2},
    # Top-level scalars of subclasses (session 46 writes exact str, int, bool and None itself): the encoder's.
    {"i": enum.IntEnum("E", "ONE")(1), "s": type("S", (str,), {})("\u2028x"), "n": -(10**40), "u": "\ud800"},
]


@pytest.mark.parametrize("value", VALUES)
def test_a_spliced_text_is_the_encoders(value: dict[str, Any]) -> None:
    whole = _ENCODER.encode(value)
    assert canonical_text(value) == whole
    for key in value:
        assert canonical_text(value, {key: _ENCODER.encode(value[key])}) == whole
    assert canonical_text(value, {k: _ENCODER.encode(v) for k, v in value.items()}) == whole


def test_make_line_with_texts_writes_the_same_line() -> None:
    key = b"k" * 32
    record = VALUES[2]
    plain = audit_chain.make_line(None, "release", "m", record, key, ts=5)
    texts = {k: _ENCODER.encode(v) for k, v in record.items()}
    assert audit_chain.make_line(None, "release", "m", record, key, ts=5, texts=texts) == plain
    whole = _ENCODER.encode(record)
    assert audit_chain.make_line(None, "release", "m", record, key, ts=5, record_text=whole) == plain


def test_the_trainers_releases_write_what_they_wrote_without_the_texts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Every audit line and signed header of ``Trainer.process`` on the bench's LR stream (a release every ~25
    labels) against the same made without the texts the trainer passes, and the texts were used."""
    from bench.data import answered_examples, make_rows
    from connectors.batch_source import RawRecord
    from driftline.settings import load_settings
    from learners import artifacts
    from schemas.codec import default_codec
    from streams import audit as audit_mod
    from streams.runtime import WorkerContext
    from streams.train import Trainer

    used = {"metrics": 0, "decision": 0, "record_text": 0, "header": 0}
    real_line = audit_mod.make_line

    def checked_line(*args: Any, texts: Any = None, record_text: Any = None, **kwargs: Any) -> Any:
        got = real_line(*args, texts=texts, record_text=record_text, **kwargs)
        assert got == real_line(*args, **kwargs)
        for name in texts or ():
            used[name] += 1
        used["record_text"] += record_text is not None
        return got

    real_header = artifacts.ArtifactHeader.to_json

    def checked_header(self: Any, metrics_json: str | None = None) -> str:
        got = real_header(self, metrics_json)
        assert got == real_header(self)
        used["header"] += metrics_json is not None
        return got

    monkeypatch.setattr(audit_mod, "make_line", checked_line)
    monkeypatch.setattr(artifacts.ArtifactHeader, "to_json", checked_header)
    settings = load_settings(
        environ={},
        overrides={
            "model.learner": {"name": "logistic_regression", "params": {}},
            "model.signing_key": "k" * 64,
            "state_dir": tempfile.mkdtemp(prefix="audit-spliced-"),
        },
    )
    codec = default_codec()
    topic = settings.topic("training")
    values = answered_examples(settings, codec, make_rows(1_500, seed=1))
    raws = [RawRecord(topic, 0, i, settings.model.name.encode(), v, 0) for i, v in enumerate(values)]
    decoded = codec.decode_many("TrainingExample", values, topic=topic)

    class Drop:
        def produce_bytes(self, topic: str, value: bytes, key: Any = None) -> None:
            pass

    ctx = WorkerContext(settings, codec, producer=Drop(), audit_deferred=True)
    log = audit_mod.AuditLog(settings, ctx.model, lambda d, m: None, topic_entries=lambda: [], deferred=True)
    ctx._audit_logs[ctx.model] = log
    trainer = Trainer(ctx, redis_conn=object())
    trainer.lifecycle.initial_release()
    pairs = list(zip(raws, decoded, strict=True))
    for k in range(0, len(pairs), 500):
        trainer.process(pairs[k : k + 500])
    assert trainer.released > 20
    assert used["header"] >= trainer.released - 1
    assert used["metrics"] >= trainer.released - 1 and used["decision"] >= trainer.released - 2
    assert used["record_text"] >= trainer.released - 2
