"""The console's ``/api/audit`` carries the verdict of ``driftline audit verify`` on its model's chain (no broker: the
topic is a dict here).

It did not: the Actions page and ``/api/audit`` listed the entries as read (the chain file, or the topic where there
is none) and never checked them, so a topic with a forged, reordered, duplicated or cut-off entry looked on the
console exactly like a sound chain while ``audit verify`` exited 1 naming the bad entry (found by outside16).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from driftline.settings import Settings, load_settings
from streams import audit_verify
from streams.audit import AuditLog, audit_paths, read_file
from streams.cli import main
from streams.commands import audit as audit_command
from streams.console import sources

KEY = "k" * 32


@pytest.fixture
def cfg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("DRIFTLINE_SIGNING_KEY", KEY)
    monkeypatch.setenv("DRIFTLINE_STATE_DIR", str(tmp_path))
    monkeypatch.setenv("DRIFTLINE_TOPIC_PREFIX", "p.")
    for module in (audit_command, audit_verify):
        monkeypatch.setattr(module, "check_reachable", lambda settings: None)
    monkeypatch.setattr(audit_verify, "audit_topic_risks", lambda settings: [])
    return load_settings(
        environ={},
        overrides={"model.signing_key": KEY, "state_dir": str(tmp_path), "kafka.topic_prefix": "p."},
    )


def _chain(settings: Settings, n: int = 5) -> list[Any]:
    log = AuditLog(settings, "default")
    for i in range(n):
        log.append("release", {"version": i + 1, "reason": "incremental"})
    return read_file(audit_paths(settings, "default")[0])


def _tampered(entries: list[Any]) -> dict[str, list[Any]]:
    return {
        "duplicated": [*entries[:2], entries[1], *entries[2:]],
        "reordered": [entries[0], entries[2], entries[1], *entries[3:]],
        "altered": [entries[0], {**entries[1], "ts": entries[1]["ts"] + 1}, *entries[2:]],
        "truncated": entries[:3],
    }


def _cli(capsys: pytest.CaptureFixture[str]) -> tuple[int, dict[str, Any]]:
    capsys.readouterr()
    rc = main(["audit", "verify", "--model", "default", "--json"])
    return rc, json.loads(capsys.readouterr().out)


@pytest.mark.parametrize("kind", ["duplicated", "reordered", "altered", "truncated"])
def test_the_console_shows_what_audit_verify_finds_wrong_with_the_topic(
    kind: str, cfg: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    entries = _chain(cfg)
    topic = {"default": _tampered(entries)[kind]}
    monkeypatch.setattr(audit_verify, "read_topic", lambda settings: topic)
    rc, report = _cli(capsys)
    shown = sources.audit_verification(cfg)
    assert rc == 1 and report["ok"] is False
    assert shown["ok"] is False
    assert shown["checks"] == report["checks"]
    problems = [p for c in shown["checks"] for p in c["problems"]]
    assert [p["kind"] for p in problems] == [kind]


def test_a_sound_chain_is_shown_verified_and_a_missing_key_is_not_called_sound(
    cfg: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    entries = _chain(cfg)
    monkeypatch.setattr(audit_verify, "read_topic", lambda settings: {"default": entries})
    rc, report = _cli(capsys)
    assert rc == 0 and sources.audit_verification(cfg) == {"ok": True, "checks": report["checks"]}
    keyless = load_settings(environ={}, overrides={"state_dir": cfg.state_dir, "kafka.topic_prefix": "p."})
    shown = sources.audit_verification(keyless)
    assert shown["ok"] is None and "signing_key" in shown["error"]


def test_a_model_with_no_chain_is_not_shown_as_verified(
    cfg: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(audit_verify, "read_topic", lambda settings: {})
    assert sources.audit_verification(cfg) == {"ok": False, "checks": [], "error": "no audit chain found"}


def test_a_chain_the_trainer_appends_to_while_it_is_verified_is_sound(
    cfg: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Read live (the console re-checks every 5 s), verify called a sound chain cut off: the trainer appended
    # between the reads of the file and of its head note ("the head note says the chain reaches seq N"), and
    # between the reads of the file and of the topic ("the file ends at seq N, the topic goes on").
    log = AuditLog(cfg, "default")
    for i in range(3):
        log.append("release", {"version": i + 1, "reason": "incremental"})
    path = audit_paths(cfg, "default")[0]
    real_read_file = audit_verify.read_file

    def read_then_append(p: Path) -> list[Any]:
        entries = real_read_file(p)
        log.append("decision", {"outcome": "promote"})  # the file line, then the head note
        return entries

    def topic_then_append(settings: Settings) -> dict[str, list[Any]]:
        log.append("release", {"version": 9, "reason": "incremental"})  # published before the file copy
        entries = real_read_file(path)
        return {"default": entries}

    monkeypatch.setattr(audit_verify, "read_file", read_then_append)
    monkeypatch.setattr(audit_verify, "read_topic", topic_then_append)
    checks = audit_verify.verify_chains(cfg, "both", "default")
    assert [(c["source"], c["ok"], c["problems"]) for c in checks] == [
        ("file", True, []),
        ("topic", True, []),
    ]


def test_a_file_cut_behind_the_topic_is_still_truncated(
    cfg: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    entries = _chain(cfg)
    path = audit_paths(cfg, "default")[0]
    path.write_text("".join(json.dumps(e) + "\n" for e in entries[:3]))
    path.with_name(path.name.removesuffix(".jsonl") + ".head.json").unlink()  # the note gone with the tail
    monkeypatch.setattr(audit_verify, "read_topic", lambda settings: {"default": entries})
    checks = audit_verify.verify_chains(cfg, "both", "default")
    assert [p["kind"] for c in checks for p in c["problems"]] == ["truncated"]


def test_a_topic_read_behind_the_file_is_read_again(cfg: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    # A trainer that writes the file before the topic has the entry: the topic read a moment behind the file.
    entries = _chain(cfg)
    reads = iter([{"default": entries[:3]}, {"default": entries}])
    monkeypatch.setattr(audit_verify, "read_topic", lambda settings: next(reads))
    checks = audit_verify.verify_chains(cfg, "both", "default")
    assert [(c["source"], c["ok"], c["lines"]) for c in checks] == [("file", True, 5), ("topic", True, 5)]
