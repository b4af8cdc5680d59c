"""A trainer restarted with a changed configuration (file or environment) uses it for every setting that was not
set live; the live ``set``s it restored from the changelog still win (no broker: the trainer's state round-trips
through pickle as on ``changelog``)."""

from __future__ import annotations

import pickle
import tempfile
from typing import Any

KEY = "trainer-restart-settings-signing-key-32-bytes"


class _Captured:
    def produce_bytes(self, topic: str, value: bytes, key: Any = None) -> None:
        pass


class _NoStatus:
    def hget(self, key: str, field: str) -> None:
        return None


def _trainer(state_dir: str, **overrides: Any) -> Any:
    from driftline.settings import load_settings
    from streams.audit import AuditLog
    from streams.runtime import WorkerContext
    from streams.train import Trainer

    s = load_settings(environ={}, overrides={"model.signing_key": KEY, "state_dir": state_dir, **overrides})
    ctx = WorkerContext(s, producer=_Captured(), audit_deferred=True, audit_source=dict)  # type: ignore[arg-type]
    ctx._audit_logs[ctx.model] = AuditLog(
        s, ctx.model, lambda data, model: None, topic_entries=list, deferred=True
    )
    return Trainer(ctx, redis_conn=_NoStatus())  # type: ignore[arg-type]


def test_a_restart_applies_the_new_configuration_except_what_was_set_live() -> None:
    state_dir = tempfile.mkdtemp(prefix="trainer-restart-")
    first = _trainer(state_dir)
    first.start(None, 0)
    first.apply("set", {"guard.min_examples": "70"})
    state = pickle.loads(pickle.dumps(first.state(), protocol=5))

    # Restarted with a new file/environment: alpha, min_examples, release_every and a drift setting changed.
    second = _trainer(
        state_dir,
        **{
            "guard.alpha": 0.04,
            "guard.min_examples": 60,
            "model.release_every": 40,
            "drift.adwin_delta": 0.001,
        },
    )
    second.start(state, 1)
    lc = second.lifecycle
    assert lc.guard.alpha == 0.04, "the restarted trainer ignored the configured guard.alpha"
    assert lc.release_every == 40
    assert lc.drift.adwin_delta == 0.001
    assert lc.guard.min_examples == 70, "a live set must survive the restart"
    assert lc.drift.feature_drift is False  # the trainer's own choice stays
    rows = second.live_settings()
    assert rows["guard.alpha"]["source"] == "file" and rows["guard.alpha"]["value"] == 0.04
    assert rows["guard.min_examples"]["source"] == "live set"
    assert rows["drift.feature_drift"]["source"] == "trainer"
