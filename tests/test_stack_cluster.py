"""The multi-node local stack's configuration (pure logic: no Java, no broker): node ports and directories,
each node's properties, what `stack up --brokers N` records, and the topics' replication settings."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from connectors.cluster import active_controller, nodes
from connectors.stack import StackConfig, recorded_cluster, render_kafka_properties
from connectors.topics import contract_topics
from driftline.errors import StackError
from driftline.settings import load_settings


def _props(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines() if line and not line.startswith("#"))


def _cfg(tmp_path: Path, brokers: int | None = 3) -> StackConfig:
    return StackConfig.from_settings(load_settings(environ={}), tmp_path, kafka_port=19092, brokers=brokers)


def test_nodes_get_their_own_ports_and_directories(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path)
    members = nodes(cfg)
    assert [(n.node, n.kafka_port, n.controller_port) for n in members] == [
        (1, 19092, 19093),
        (2, 19094, 19095),
        (3, 19096, 19097),
    ]
    assert [n.kafka_dir.name for n in members] == ["kafka-1", "kafka-2", "kafka-3"]
    assert cfg.kafka_address == "127.0.0.1:19092,127.0.0.1:19094,127.0.0.1:19096"
    assert members[1].kafka_address == "127.0.0.1:19094"


def test_single_node_default_is_unchanged(tmp_path: Path) -> None:
    cfg = StackConfig.from_settings(load_settings(environ={}), tmp_path)
    assert (cfg.brokers, cfg.kafka_port, cfg.controller_port) == (1, 9092, 9093)
    assert cfg.kafka_dir == tmp_path / "stack" / "kafka"
    props = _props(render_kafka_properties(cfg))
    assert props["node.id"] == "1"
    assert props["controller.quorum.voters"] == "1@127.0.0.1:9093"
    assert props["min.insync.replicas"] == "1"


def test_node_properties_form_one_quorum(tmp_path: Path) -> None:
    members = nodes(_cfg(tmp_path))
    second = _props(render_kafka_properties(members[1]))
    assert second["node.id"] == "2"
    assert second["controller.quorum.voters"] == "1@127.0.0.1:19093,2@127.0.0.1:19095,3@127.0.0.1:19097"
    assert second["listeners"] == "PLAINTEXT://127.0.0.1:19094,CONTROLLER://127.0.0.1:19095"
    assert second["advertised.listeners"] == "PLAINTEXT://127.0.0.1:19094"
    assert second["log.dirs"] == str(members[1].kafka_dir / "data")
    for key in ("default.replication.factor", "offsets.topic.replication.factor",
                "transaction.state.log.replication.factor"):  # fmt: skip
        assert second[key] == "3", key
    assert second["min.insync.replicas"] == "2"
    assert second["transaction.state.log.min.isr"] == "2"
    assert second["unclean.leader.election.enable"] == "false"


def test_status_and_down_find_the_recorded_cluster(tmp_path: Path) -> None:
    stack_dir = tmp_path / "stack"
    assert recorded_cluster(stack_dir) == {}
    stack_dir.mkdir()
    (stack_dir / "cluster.json").write_text(
        json.dumps({"brokers": 3, "kafka_port": 29092, "controller_port": 29093})
    )
    cfg = StackConfig.from_settings(load_settings(environ={}), tmp_path)  # no --brokers, no --kafka-port
    assert (cfg.brokers, cfg.kafka_port, cfg.controller_port) == (3, 29092, 29093)
    explicit = StackConfig.from_settings(load_settings(environ={}), tmp_path, brokers=1)
    assert (explicit.brokers, explicit.kafka_port) == (1, 9092)


def test_brokers_must_be_positive(tmp_path: Path) -> None:
    with pytest.raises(StackError, match="--brokers"):
        _cfg(tmp_path, brokers=0)


def test_active_controller_is_the_leader_of_the_latest_epoch(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path)
    assert active_controller(cfg) is None
    for node, (epoch, leader) in zip(nodes(cfg), ((3, 2), (4, 1), (3, 2)), strict=True):
        path = node.kafka_dir / "data" / "__cluster_metadata-0" / "quorum-state"
        path.parent.mkdir(parents=True)
        path.write_text(json.dumps({"leaderId": leader, "leaderEpoch": epoch}))
    assert active_controller(cfg) == 1


@pytest.mark.parametrize(("rf", "isr"), [(1, None), (2, "1"), (3, "2"), (5, "2")])
def test_replicated_topics_require_two_in_sync_replicas(rf: int, isr: str | None) -> None:
    specs = contract_topics(load_settings(environ={}, overrides={"kafka.replication_factor": rf}))
    for spec in specs.values():
        assert spec.replication_factor == rf
        assert spec.config.get("min.insync.replicas") == isr, spec.name
