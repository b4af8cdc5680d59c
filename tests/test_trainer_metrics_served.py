"""The train role exports ``driftline_served_model_version`` and ``driftline_served_model_info`` (found from
outside, session 28): docs/metrics.md says the gauge is the version a worker serves (scorer) *or trains* (trainer),
yet a separate ``--role train`` process never set it, so its /metrics had no served version at all."""

from __future__ import annotations

import pytest

from tests.test_trainer_label_types import _trainer
from tests.trainer_helpers import label_records


def _value(trainer: object, name: str, **labels: str) -> float | None:
    registry = trainer.ctx.metrics.registry  # type: ignore[attr-defined]
    return registry.get_sample_value(name, labels)


def test_the_trainer_exports_the_version_it_serves(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("streams.train.hset_if_newer", lambda *args: None)  # no Redis here
    trainer = _trainer()
    trainer.process(label_records([i % 2 for i in range(300)]))
    trainer.publish_status()
    served = trainer.lifecycle.served_version
    assert served >= 2  # v1 and at least one release learned from these labels
    assert _value(trainer, "driftline_served_model_version", model="default") == served
    assert _value(trainer, "driftline_served_model_info", model="default", version=str(served)) == 1
    assert _value(trainer, "driftline_served_model_info", model="default", version="1") is None
