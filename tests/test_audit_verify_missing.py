"""``driftline audit verify`` when a copy of a chain is missing altogether, and ``audit show`` where the state dir
has no chain files (no broker: the topic is a dict here).

- The file has the chain and the topic has none of it (the topic deleted and made again, or emptied): verify said
  OK for both, since an absent topic chain was never compared with the file.
- ``--model`` naming a model that has no chain anywhere (a typo): "OK nosuch: 0 entries", exit 0.
- ``audit show`` read only the state dir's files: on any machine but the trainer's it printed "no audit entries"
  while the topic had the whole trail.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource, NewTopic

from connectors.topics import contract_topics
from driftline.errors import StackError
from driftline.settings import Settings, load_settings
from streams import audit_verify
from streams.audit import AuditLog, audit_paths, read_file
from streams.cli import main
from streams.commands import audit as audit_command
from tests.conftest import KAFKA_BOOTSTRAP

KEY = "k" * 32


@pytest.fixture
def cfg(tmp_path: Path) -> Settings:
    return load_settings(
        environ={},
        overrides={"model.signing_key": KEY, "state_dir": str(tmp_path), "kafka.topic_prefix": "p."},
    )


def _run(monkeypatch: pytest.MonkeyPatch, settings: Settings, topic: dict[str, list[Any]], *args: str) -> int:
    monkeypatch.setenv("DRIFTLINE_SIGNING_KEY", KEY)
    monkeypatch.setenv("DRIFTLINE_STATE_DIR", settings.state_dir)
    monkeypatch.setenv("DRIFTLINE_TOPIC_PREFIX", "p.")
    for module in (audit_command, audit_verify):
        monkeypatch.setattr(module, "check_reachable", lambda settings: None)
    monkeypatch.setattr(audit_verify, "audit_topic_risks", lambda settings: [])
    for module in (audit_command, audit_verify):
        monkeypatch.setattr(module, "read_topic", lambda settings: topic)
    return main(["audit", *args])


def _chain(settings: Settings, model: str = "default", n: int = 4) -> list[Any]:
    log = AuditLog(settings, model)
    for i in range(n):
        log.append("release", {"version": i + 1, "reason": "incremental"})
    return read_file(audit_paths(settings, model)[0])


def test_a_topic_without_the_files_chain_fails_verify(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], cfg: Settings
) -> None:
    entries = _chain(cfg)
    assert _run(monkeypatch, cfg, {"default": entries}, "verify") == 0
    capsys.readouterr()
    assert _run(monkeypatch, cfg, {}, "verify") == 1
    out = capsys.readouterr().out
    assert "FAIL default: 0 entries (topic p.audit)" in out and "truncated" in out, out
    assert _run(monkeypatch, cfg, {}, "verify", "--model", "default", "--json") == 1
    report = json.loads(capsys.readouterr().out)
    topic = [c for c in report["checks"] if c["source"] == "topic"]
    assert [p["kind"] for p in topic[0]["problems"]] == ["truncated"]


def test_verify_of_a_model_with_no_chain_anywhere_is_not_ok(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], cfg: Settings
) -> None:
    entries = _chain(cfg)
    assert _run(monkeypatch, cfg, {"default": entries}, "verify", "--model", "nosuch") == 1
    assert "no audit chain found" in capsys.readouterr().out


def test_show_reads_the_topic_when_the_state_dir_has_no_chain(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], cfg: Settings, tmp_path: Path
) -> None:
    entries = _chain(cfg)
    elsewhere = load_settings(
        environ={},
        overrides={
            "model.signing_key": KEY,
            "state_dir": str(tmp_path / "other"),
            "kafka.topic_prefix": "p.",
        },
    )
    assert _run(monkeypatch, elsewhere, {"default": entries}, "show", "--json") == 0
    captured = capsys.readouterr()
    assert [json.loads(line)["seq"] for line in captured.out.splitlines()] == [0, 1, 2, 3]
    assert "topic" in captured.err
    # where the files are, they are what show reads by default (as before)
    assert _run(monkeypatch, cfg, {}, "show", "--json") == 0
    assert len(capsys.readouterr().out.splitlines()) == 4


def test_show_of_a_model_with_no_chain_anywhere_says_so_and_exits_1(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], cfg: Settings
) -> None:
    """Session 34: `audit show --model nosuch` printed "no audit entries" and exited 0 (verify exits 1), after
    saying there was no chain file in a state dir that held the default model's."""
    entries = _chain(cfg)
    assert _run(monkeypatch, cfg, {"default": entries}, "show", "--model", "nosuch") == 1
    err = capsys.readouterr().err
    assert "no audit chain found for model 'nosuch'" in err
    assert "no chain file of model 'nosuch' in" in err
    # a model with a chain, and a kind filter that matches nothing, are not errors
    assert (
        _run(monkeypatch, cfg, {"default": entries}, "show", "--model", "default", "--kind", "control") == 0
    )
    assert "no audit entries" in capsys.readouterr().out


def test_a_chain_file_deleted_from_the_state_dir_that_made_it_fails_verify(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], cfg: Settings, tmp_path: Path
) -> None:
    """gov40, session 40 (T5): the chain file and head note deleted, the topic intact: verify checked the topic
    alone and exited 0, as on a machine that never had the files. The trainer now leaves a marker next to a chain
    file it makes; a state dir with the marker and without the file is told so (exit 1, as a cut-off copy)."""
    entries = _chain(cfg)
    chain, head = audit_paths(cfg, "default")
    chain.unlink()
    head.unlink()
    assert _run(monkeypatch, cfg, {"default": entries}, "verify") == 1
    out = capsys.readouterr().out
    assert (
        f"FAIL default: 0 entries (file {chain})" in out and "are gone, but this state dir held them" in out
    )
    assert "OK   default: 4 entries, head seq 3" in out  # the topic's copy is still checked
    assert _run(monkeypatch, cfg, {"default": entries}, "verify", "--model", "default", "--json") == 1
    report = json.loads(capsys.readouterr().out)
    assert [(c["source"], c["ok"]) for c in report["checks"]] == [("file", False), ("topic", True)]
    # a machine that never had the files (an auditor's) verifies from the topic alone, as before
    elsewhere = load_settings(
        environ={},
        overrides={
            "model.signing_key": KEY,
            "state_dir": str(tmp_path / "other"),
            "kafka.topic_prefix": "p.",
        },
    )
    assert _run(monkeypatch, elsewhere, {"default": entries}, "verify") == 0
    capsys.readouterr()
    # a trainer that opens the chain again copies it from the topic; verify is OK again
    log = AuditLog(cfg, "default", topic_entries=lambda: entries)
    log.open()
    assert _run(monkeypatch, cfg, {"default": entries}, "verify") == 0
    # a chain file made before the marker existed is marked when a trainer opens it
    marker = chain.with_name("p.default.chain-made")
    marker.unlink()
    AuditLog(cfg, "default").open()
    assert marker.exists()


@pytest.mark.kafka
@pytest.mark.parametrize("config", [{"cleanup.policy": "compact"}, {"retention.ms": "604800000"}])
def test_an_audit_topic_set_to_lose_entries_fails_verify_before_it_loses_one(
    config: dict[str, str], prefix: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Session 42 noticed: a compacted ``audit`` topic (keyed by model, so only each model's last entry is kept) or
    one with a finite retention was flagged by ``doctor``, but ``audit verify`` said OK until Kafka had removed
    entries. Real broker: the topic's settings are read from it."""
    settings = load_settings(
        environ={},
        overrides={
            "model.signing_key": KEY,
            "state_dir": str(tmp_path),
            "kafka.topic_prefix": prefix,
            "kafka.bootstrap": KAFKA_BOOTSTRAP,
        },
    )
    entries = _chain(settings)
    admin = AdminClient({"bootstrap.servers": KAFKA_BOOTSTRAP})
    spec = contract_topics(settings)["audit"]
    topic = NewTopic(spec.name, num_partitions=1, replication_factor=1, config={**spec.config, **config})
    admin.create_topics([topic])[spec.name].result(timeout=30)
    monkeypatch.setattr(audit_verify, "read_topic", lambda settings: {"default": entries})
    checks = audit_verify.verify_chains(settings)
    topic_checks = [c for c in checks if c["source"] == "topic"]
    assert [c["source"] for c in checks if c["ok"]] == ["file"] and len(topic_checks) == 1
    (problem,) = topic_checks[0]["problems"]
    assert (
        problem["kind"] == "at_risk"
        and spec.name in problem["text"]
        and "kafka-configs.sh" in problem["text"]
    )
    assert next(iter(config)) in problem["text"]
    entries_set = [
        ConfigEntry(k, v, incremental_operation=AlterConfigOpType.SET) for k, v in spec.config.items()
    ]
    resource = ConfigResource("topic", spec.name, incremental_configs=entries_set)
    admin.incremental_alter_configs([resource])[resource].result(timeout=30)
    assert all(c["ok"] for c in audit_verify.verify_chains(settings))


def test_a_principal_that_cannot_read_the_topic_s_settings_still_verifies_with_a_note(
    monkeypatch: pytest.MonkeyPatch, cfg: Settings
) -> None:
    """CI of session 43: an operator with SECURITY.md's ACLs before DescribeConfigs was granted got `audit verify`
    exit 1 on TOPIC_AUTHORIZATION_FAILED; the chain is verified all the same and the unchecked setting noted."""
    entries = _chain(cfg)

    def denied(settings: Settings) -> list[str]:
        raise StackError("cannot read the config of topic p.audit: TOPIC_AUTHORIZATION_FAILED")

    monkeypatch.setattr(audit_verify, "check_reachable", lambda settings: None)
    monkeypatch.setattr(audit_verify, "read_topic", lambda settings: {"default": entries})
    monkeypatch.setattr(audit_verify, "audit_topic_risks", denied)
    checks = audit_verify.verify_chains(cfg)
    assert [c["ok"] for c in checks] == [True, True]
    (topic,) = [c for c in checks if c["source"] == "topic"]
    assert any("settings were not checked" in n and "AUTHORIZATION" in n for n in topic["notes"]), topic
