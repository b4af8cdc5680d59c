"""After an aborted trainer transaction the trainers are rebuilt from their committed state, and with them their
audit chains: the chain must be opened against the audit topic as it is now, not as it was read at the last restore
(a stale, empty view made it publish the whole chain again, so `audit verify` failed on the topic with "duplicated:
seq 0"). No broker: the topic is a list, the transactional parts are stubs."""

from __future__ import annotations

import json
import tempfile
from types import SimpleNamespace
from typing import Any

import pytest

from driftline.settings import load_settings
from streams import trainer_transactions
from streams.audit import AuditLog, read_file
from streams.trainer_transactions import TransactionalBatches

KEY = "audit-after-abort-signing-key-0123456789abcdef"


class _Counter:
    def labels(self, **_: Any) -> _Counter:
        return self

    def inc(self) -> None:
        pass


def test_a_chain_reopened_after_an_abort_does_not_publish_its_entries_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = load_settings(
        environ={}, overrides={"model.signing_key": KEY, "state_dir": tempfile.mkdtemp(prefix="audit-abort-")}
    )
    topic: list[dict[str, Any]] = []  # what a read_committed reader of the audit topic sees
    monkeypatch.setattr(trainer_transactions, "read_topic", lambda s: {"default": list(topic)})

    group: Any = object.__new__(TransactionalBatches)
    group.settings, group.member, group._audit = settings, "m1", None
    group.metrics = SimpleNamespace(transactions=_Counter())
    group.ctx = SimpleNamespace(out=SimpleNamespace(abort=lambda: None))
    group.trainers, group._replies = {}, []
    group._rewind = lambda: None
    group._resume, group._unchecked = (
        {},
        set(),
    )  # the offsets a commit left (TransactionalBatches._check_resumed)

    def publish(data: bytes, model: str) -> None:
        topic.append(json.loads(data))

    def chain() -> AuditLog:
        return AuditLog(
            settings, "default", publish, topic_entries=lambda: group._audit_entries().get("default", [])
        )

    first = chain()
    for n in range(3):
        first.append("control", {"n": n})
    assert [e["seq"] for e in topic] == [0, 1, 2]

    group._abort(RuntimeError("a poison record"), {})  # not fenced: the trainers are rebuilt lazily
    again = chain()
    again.append("control", {"n": 3})
    assert [e["seq"] for e in topic] == [0, 1, 2, 3], "the reopened chain published its entries again"
    assert [e["seq"] for e in read_file(again.path)] == [0, 1, 2, 3]
