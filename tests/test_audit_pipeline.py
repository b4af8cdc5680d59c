"""The audit chain on the real local stack: a trainer writes releases, decisions and control commands to the
``audit`` topic and its file; ``driftline audit verify`` passes, then fails on a tampered copy and on a forged
entry appended to the topic. Releases carry what changed, and ``models diff`` shows it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient, ConfigResource

from driftline.audit_chain import entry_hash, to_line
from streams.audit import audit_paths, read_file, read_topic
from streams.console import sources as console_sources
from tests.pipeline_helpers import KAFKA_BOOTSTRAP, Pipeline, running
from tests.test_pipeline_control import send

pytestmark = pytest.mark.kafka
# Not the auto pool: its answering member may change between releases, and the test reads linear weights.
LEARNER = "logistic_regression"


def test_trainer_chain_verifies_and_tampering_is_caught(prefix: str, redis_url: str, tmp_path: Path) -> None:
    pipeline = Pipeline(
        prefix,
        tmp_path,
        redis_url,
        extra_env={"DRIFTLINE__MODEL__RELEASE_EVERY": "50", "DRIFTLINE__MODEL__LEARNER__NAME": LEARNER},
    )
    settings = pipeline.settings()
    with running(pipeline):
        pipeline.start("all")
        send(pipeline, 0, 300)
        pipeline.wait_learned(300)
        pipeline.cli("models", "pause")
        pipeline.cli("models", "resume")

        def chain() -> list[dict]:
            entries = read_topic(settings).get("default", [])
            kinds = {e.get("kind") for e in entries}
            return entries if {"release", "control"} <= kinds and len(entries) >= 3 else []

        entries = pipeline.wait_until("releases and controls on the audit topic", chain, timeout=60)
    # The topic keeps everything: delete-only, unlimited time and size.
    admin = AdminClient({"bootstrap.servers": KAFKA_BOOTSTRAP})
    resource = ConfigResource(ConfigResource.Type.TOPIC, f"{prefix}audit")
    config = next(iter(admin.describe_configs([resource]).values())).result()
    assert config["cleanup.policy"].value == "delete"
    assert config["retention.ms"].value == "-1" and config["retention.bytes"].value == "-1"

    assert [e["seq"] for e in entries] == list(range(len(entries)))
    commands = [e["record"]["command"] for e in entries if e["kind"] == "control"]
    assert commands == ["pause_learning", "resume_learning"]
    proc = pipeline.cli("audit", "verify", "--json")
    report = json.loads(proc.stdout)
    assert report["ok"] is True
    assert {c["source"] for c in report["checks"]} == {"file", "topic"}
    assert all(c["entries"] == len(entries) for c in report["checks"])

    # Every release says what changed from its parent; `models diff` shows it from the signed artifacts.
    releases = [e["record"] for e in entries if e["kind"] == "release"]
    assert releases[0]["reason"] == "initial" and releases[0]["changes"] is None
    later = [r for r in releases if r["reason"] == "incremental"]
    assert later, f"no incremental release audited: {[r['reason'] for r in releases]}"
    assert later[-1]["changes"]["top"][0]["feature"] == "a"  # the label is a > 0.5
    assert later[-1]["data_range"]["last_index"] >= later[-1]["data_range"]["first_index"] >= 0
    assert later[-1]["decision"]["outcome"]
    last = later[-1]["version"]
    diff = json.loads(pipeline.cli("models", "diff", "1", str(last), "--json").stdout)
    assert diff["weights"]["top"][0]["feature"] == "a" and diff["b"]["version"] == last
    assert "largest changes" in pipeline.cli("models", "diff", "1", str(last)).stdout

    # A tampered copy of the topic: one guard/control outcome rewritten.
    copy = tmp_path / "copy.jsonl"
    victim = next(i for i, e in enumerate(entries) if e["kind"] == "control")
    tampered = [dict(e) for e in entries]
    tampered[victim] = json.loads(json.dumps(entries[victim]))
    tampered[victim]["record"]["outcome"] = "refused: by nobody"
    copy.write_text("".join(to_line(e) + "\n" for e in tampered))
    proc = pipeline.cli("audit", "verify", "--file", str(copy), check=False)
    assert proc.returncode == 1
    assert f"altered: entry #{victim} (seq {victim})" in proc.stdout, proc.stdout

    # A forged entry appended to the real topic by someone with write access but without the key.
    last = entries[-1]
    forged = {
        "seq": last["seq"] + 1,
        "ts": last["ts"] + 1,
        "kind": "control",
        "model": "default",
        "record": {"command": "promote", "args": {"version": "1"}, "outcome": "ok"},
        "prev": last["hash"],
        "sig_key_id": last["sig_key_id"],
    }
    forged["hash"] = entry_hash(forged)
    forged["sig"] = "0" * 64
    pipeline.send_raw("audit", [to_line(forged).encode()], key=b"default")
    proc = pipeline.cli("audit", "verify", "--source", "topic", check=False)
    assert proc.returncode == 1
    assert f"forged: entry #{len(entries)} (seq {len(entries)})" in proc.stdout, proc.stdout
    # The trainer's own file, which the forger could not touch, still verifies.
    proc = pipeline.cli("audit", "verify", "--source", "file")
    assert f"OK   default: {len(entries)} entries" in proc.stdout, proc.stdout

    # A restarted trainer continues its chain from the file (the forged topic entry is not copied into it).
    with running(pipeline):
        pipeline.start("train")
        pipeline.cli("models", "pause")
        path = audit_paths(settings, "default")[0]
        pipeline.wait_until("the pause audited", lambda: len(read_file(path)) > len(entries), timeout=60)
    after = read_file(path)
    assert [e["seq"] for e in after] == list(range(len(after)))
    assert (
        after[len(entries)]["prev"] == entries[-1]["hash"]
        and after[-1]["record"]["command"] == "pause_learning"
    )
    assert "OK   default" in pipeline.cli("audit", "verify", "--source", "file").stdout


def test_a_line_forged_into_the_file_is_not_published_by_a_restarted_trainer(
    prefix: str, redis_url: str, tmp_path: Path
) -> None:
    # Someone who can write the state dir but not the topic appends a well-linked entry to the chain file (hash
    # right, signature made up). The restarted trainer levelled the copies from the longer one and published it
    # onto the append-only topic in its own name (docs/experiments/gov40.md, T7). The file names the forgery; the
    # topic must not carry it.
    pipeline = Pipeline(prefix, tmp_path, redis_url, extra_env={"DRIFTLINE__MODEL__LEARNER__NAME": LEARNER})
    settings = pipeline.settings()
    path = audit_paths(settings, "default")[0]
    with running(pipeline):
        pipeline.start("train")
        pipeline.cli("models", "pause")
        pipeline.wait_until(
            "the pause on the topic", lambda: len(read_topic(settings).get("default", [])) >= 2
        )
    entries = read_file(path)
    last = entries[-1]
    forged = {
        "seq": last["seq"] + 1,
        "ts": last["ts"] + 1,
        "kind": "control",
        "model": "default",
        "record": {"command": "promote", "args": {"version": "1"}, "outcome": "ok", "by": "gov40-forger"},
        "prev": last["hash"],
        "sig_key_id": last["sig_key_id"],
    }
    forged["hash"] = entry_hash(forged)
    forged["sig"] = "0" * 64
    with path.open("a") as fh:
        fh.write(to_line(forged) + "\n")
    with running(pipeline):
        pipeline.start("train")
        pipeline.cli("models", "resume")  # the first append after the start levels file and topic
        pipeline.wait_until(
            "the resume on the topic",
            lambda: any(
                (e.get("record") or {}).get("command") == "resume_learning"
                for e in read_topic(settings).get("default", [])
            ),
        )
    on_topic = read_topic(settings).get("default", [])
    assert all((e.get("record") or {}).get("by") != "gov40-forger" for e in on_topic), on_topic[-3:]
    proc = pipeline.cli("audit", "verify", check=False)
    assert proc.returncode == 1 and "forged" in proc.stdout, proc.stdout


def test_a_chain_file_left_behind_by_a_trainer_the_model_moved_from(
    prefix: str, redis_url: str, tmp_path: Path
) -> None:
    # Two trainers of the group on two machines (two state dirs): the model moves from the first to the second,
    # which goes on from the topic. On the first machine, `audit verify` called the honest file it left behind
    # `truncated` (exit 1), and `audit show` and the console showed that old file as the whole trail, without
    # the commands applied since (docs/experiments/gov42.md, A2A and C6-C9).
    env = {"DRIFTLINE__MODEL__LEARNER__NAME": LEARNER}
    first = Pipeline(prefix, tmp_path / "a", redis_url, extra_env=env)
    second = Pipeline(prefix, tmp_path / "b", redis_url, extra_env=env)
    settings = first.settings()

    def on_topic(command: str) -> bool:
        entries = read_topic(settings).get("default", [])
        return any((e.get("record") or {}).get("command") == command for e in entries)

    with running(first):
        first.start("train")
        first.cli("models", "pause")
        first.wait_until("the pause on the topic", lambda: on_topic("pause_learning"))
    with running(second):
        second.start("train")
        second.cli("models", "resume")
        second.wait_until("the resume on the topic", lambda: on_topic("resume_learning"))
    topic = read_topic(settings)["default"]
    left = read_file(audit_paths(settings, "default")[0])
    assert len(left) < len(topic), "the first machine's file should have stopped before the resume"

    proc = first.cli("audit", "verify", "--json", check=False)
    report = json.loads(proc.stdout)
    assert proc.returncode == 0 and report["ok"] is True, proc.stdout
    topic_check = next(c for c in report["checks"] if c["source"] == "topic")
    assert "stopped writing the chain" in " ".join(topic_check.get("notes", [])), topic_check

    shown = [json.loads(line) for line in first.cli("audit", "show", "--json").stdout.splitlines()]
    assert [e["seq"] for e in shown] == [e["seq"] for e in topic]
    assert any((e["record"] or {}).get("command") == "resume_learning" for e in shown)

    trail, where = console_sources.audit_trail(settings)
    assert [e["seq"] for e in trail] == [e["seq"] for e in topic], where
    assert str(audit_paths(settings, "default")[0]) in where and f"{prefix}audit" in where

    # A file cut behind the topic without its signed head note is still a cut-off copy.
    note = audit_paths(settings, "default")[1]
    note.unlink()
    proc = first.cli("audit", "verify", check=False)
    assert proc.returncode == 1 and "truncated" in proc.stdout, proc.stdout


def test_a_longer_prefix_in_the_same_state_dir_is_not_this_prefix_s_chain(
    prefix: str, redis_url: str, tmp_path: Path
) -> None:
    # Two deployments on one machine, one state dir (the default ~/.driftline): `driftline.` and
    # `driftline.staging.`, here P and P + "staging.". The second's chain file `<P>staging.default.jsonl` matched
    # the first's `<P>*.jsonl`: `audit verify` of P failed it as model `staging.default`, `foreign` and `forged`
    # (docs/experiments/gov42.md, finding 4), and `audit show` of P mixed its entries in.
    env = {"DRIFTLINE__MODEL__LEARNER__NAME": LEARNER}
    state = tmp_path / "state"
    pipelines = [Pipeline(p, state, redis_url, extra_env=env) for p in (prefix, f"{prefix}staging.")]
    for pipeline in pipelines:
        settings = pipeline.settings()
        with running(pipeline):
            pipeline.start("train")
            pipeline.cli("models", "pause")
            pipeline.wait_until(
                "the pause on the topic",
                lambda settings=settings: len(read_topic(settings).get("default", [])) >= 2,
            )
    assert audit_paths(pipelines[1].settings(), "default")[0].exists()
    proc = pipelines[0].cli("audit", "verify", "--json", check=False)
    report = json.loads(proc.stdout)
    assert proc.returncode == 0 and {c["model"] for c in report["checks"]} == {"default"}, proc.stdout
    shown = [json.loads(line) for line in pipelines[0].cli("audit", "show", "--json").stdout.splitlines()]
    assert {e["model"] for e in shown} == {"default"}
    assert len(shown) == len(read_topic(pipelines[0].settings())["default"])
    # The other deployment checks its own chain as before.
    assert pipelines[1].cli("audit", "verify", check=False).returncode == 0
