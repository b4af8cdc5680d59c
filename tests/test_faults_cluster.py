"""Broker faults on a three-node KRaft cluster: partition leaders killed (-9) and restarted, the active controller
killed, a broker frozen past the session timeouts.

The cluster is this module's own (``stack up --brokers 3`` on a free block of ports, a tmp state dir); Redis is
the shared one, with the test's key prefix. Topics replicate to all three nodes with ``min.insync.replicas`` 2,
so every acknowledged write (``acks=all``) is on two nodes and any one node may fail. After each fault the
oracle of :mod:`tests.fault_helpers` must hold (every event predicted at least once, every label learned exactly
once, each release equal to the model trained offline, nothing dead-lettered) and the releases on ``models``,
in offset order, have strictly increasing versions and all verify.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from confluent_kafka.admin import AdminClient

from connectors.cluster import active_controller
from connectors.localproc import port_bindable
from connectors.producer import EventProducer
from connectors.stack import StackConfig, stack_status, stack_up
from connectors.topics import TOPIC_NAMES, check_topics, ensure_topics
from driftline.settings import load_settings
from tests.conftest import REDIS_URL
from tests.fault_helpers import FAULT_ENV, Publisher, check_run, make_events, running_all, wait_complete
from tests.pipeline_helpers import Pipeline
from tests.test_producer_stuck import read_records
from tests.waiting import wait_until

REDIS_PORT = urlsplit(REDIS_URL).port or 6379

pytestmark = [pytest.mark.faults, pytest.mark.cluster, pytest.mark.kafka, pytest.mark.slow]

BROKERS = 3
N = 600
RATE = 20.0  # events/s: a 30 s stream, long enough to hit it with one fault and a restart
ENV = {"DRIFTLINE__MODEL__RELEASE_EVERY": "200", "DRIFTLINE__KAFKA__REPLICATION_FACTOR": "3"}


def _free_block(n: int) -> int:
    """A base port with ``n`` consecutive ports nothing listens on (the cluster's nodes use base + 0..n-1)."""
    rng = random.SystemRandom()
    for _ in range(200):
        base = rng.randrange(20_000, 40_000, 2)
        if all(port_bindable("127.0.0.1", base + i) for i in range(n)):
            return base
    raise AssertionError(f"no block of {n} free ports")


def _stack_cli(*args: str) -> dict[str, Any]:
    """``driftline stack ARGS --json`` as a user runs it (no DRIFTLINE_* from the test run's environment)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DRIFTLINE")}
    done = subprocess.run(
        [sys.executable, "-m", "streams.cli", "stack", *args, "--json"],
        capture_output=True, text=True, env=env, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode in (0, 1), done.stderr[-2000:]
    return dict(json.loads(done.stdout))


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackConfig]:
    """The cluster, started and stopped with the CLI; ``status`` and ``down`` find it from the state dir alone."""
    base = _free_block(2 * BROKERS)
    state_dir = tmp_path_factory.mktemp("cluster")
    # The test Redis (DRIFTLINE_TEST_REDIS), which is up: never a Redis of its own on 6379 under someone else's.
    where = ("--state-dir", str(state_dir), "--redis-port", str(REDIS_PORT))
    try:
        up = _stack_cli("up", "--brokers", str(BROKERS), "--kafka-port", str(base), "--no-topics",
                        "--timeout", "240", *where)  # fmt: skip
        assert [n["state"] for n in up["kafka_nodes"]] == ["up"] * BROKERS, up
        status = _stack_cli("status", *where)
        assert status["kafka"]["address"] == ",".join(f"127.0.0.1:{base + 2 * i}" for i in range(BROKERS))
        assert status["kafka"]["state"] == "up", status
        cfg = StackConfig.from_settings(load_settings(environ={}), state_dir, redis_port=REDIS_PORT)
        assert (cfg.brokers, cfg.kafka_port) == (BROKERS, base)
        yield cfg
    finally:
        down = _stack_cli("down", *where)
        assert [n["state"] for n in down.get("kafka_nodes", [])] == ["down"] * BROKERS, down


def _up(cfg: StackConfig) -> None:
    status = stack_up(cfg, timeout_s=240)
    assert [n.state for n in status.kafka_nodes] == ["up"] * BROKERS, status.to_dict()


@pytest.fixture
def pipeline(cluster: StackConfig, prefix: str, tmp_path: Path) -> Iterator[Pipeline]:
    _up(cluster)  # a test that failed half-way may have left a node down
    env = {"DRIFTLINE_KAFKA_BOOTSTRAP": cluster.kafka_address, **FAULT_ENV, **ENV}
    with running_all(Pipeline(prefix, tmp_path, REDIS_URL, extra_env=env)) as p:
        yield p


# ------------------------------------------------------------------------------------------------------ helpers


def _admin(cluster: StackConfig) -> AdminClient:
    # librdkafka's "connection refused" to the node the test just killed goes to a logger, not to stderr.
    conf: dict[str, Any] = {
        "bootstrap.servers": cluster.kafka_address,
        "logger": logging.getLogger("cluster-admin"),
    }
    return AdminClient(conf)


def _leader(cluster: StackConfig, topic: str, partition: int = 0) -> int:
    """Node id leading ``topic``'s ``partition`` now."""
    meta = _admin(cluster).list_topics(topic, timeout=30).topics[topic]
    leader = meta.partitions[partition].leader
    assert leader > 0, f"{topic}[{partition}] has no leader"
    return int(leader)


def _pid(cluster: StackConfig, node: int) -> int:
    pid = stack_status(cluster).kafka_nodes[node - 1].pid
    assert pid, f"kafka-{node} is not running"
    return pid


def _gone(pid: int, timeout: float = 30.0) -> None:
    def dead() -> bool:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return True
        return stat.split(") ", 1)[1].startswith("Z")

    wait_until(f"pid {pid} to die after SIGKILL", dead, timeout, 0.1)


def _kill9_and_restart(cluster: StackConfig, node: int, down_s: float = 3.0) -> None:
    pid = _pid(cluster, node)
    os.kill(pid, signal.SIGKILL)
    _gone(pid)
    time.sleep(down_s)  # clients notice: requests to it fail, leadership moves
    _up(cluster)
    _wait_in_sync(cluster)


def _wait_in_sync(cluster: StackConfig, timeout: float = 120.0) -> None:
    """Every partition's ISR holds all replicas again (so the next fault hits a whole cluster)."""
    lagging: list[str] = []

    def in_sync() -> bool:
        topics = _admin(cluster).list_topics(timeout=30).topics
        lagging[:] = [
            f"{name}[{p.id}]"
            for name, meta in topics.items()
            for p in meta.partitions.values()
            if sorted(p.isrs) != sorted(p.replicas)
        ]
        return not lagging

    wait_until("every replica in sync", in_sync, timeout, 1.0, context=lambda: f"out of sync: {lagging[:5]}")


def check_releases(pipeline: Pipeline) -> int:
    """The releases on ``models`` in offset order: versions strictly increasing, every one verifies."""
    records = sorted(pipeline.read("models"), key=lambda r: (r.partition, r.offset))
    assert all(r.ok for r in records), "an undecodable release"
    releases = [r.value for r in records if r.value is not None]
    versions = [int(r["version"]) for r in releases]
    assert len(versions) >= 2, f"expected the initial release and updates, got versions {versions}"
    assert all(a < b for a, b in itertools.pairwise(versions)), f"versions {versions}"
    for release in releases:
        pipeline.load_model(release)  # raises unless the signature and digest verify
    return len(versions)


@contextlib.contextmanager
def _streaming(pipeline: Pipeline, n: int = N, rate: float = RATE) -> Iterator[Publisher]:
    """Every stage running, ``n`` events streaming at ``rate``; the block injects faults; then the whole oracle."""
    pipeline.start("score", "join", "train")
    topics = check_topics(pipeline.settings(), TOPIC_NAMES)
    assert {(c.replication_factor, c.config.get("min.insync.replicas")) for c in topics} == {(3, "2")}, [
        c.to_dict() for c in topics if c.status != "ok"
    ]
    events = make_events(n)
    publisher = Publisher(pipeline, events, rate=rate)
    publisher.start()
    yield publisher
    publisher.finish()
    ids = {e.id for e in events}
    out = wait_complete(pipeline, events, ids, timeout=180)
    check_run(pipeline, out, events, ids)
    check_releases(pipeline)


# -------------------------------------------------------------------------------------------------------- tests


def test_partition_leaders_killed_and_restarted(cluster: StackConfig, pipeline: Pipeline) -> None:
    """kill -9 the node leading ``training``, then the one leading ``models``, then the one leading
    ``features`` partition 0, each restarted (and back in sync) before the next, while events stream."""
    # A 100 s stream: a restart of a node takes 15-30 s on a busy 2-core machine. Once the third node is back in
    # sync, the rest goes at 100/s (on a quiet machine the three restarts took ~45 s of the 100, tspeed43).
    n, rate = 1000, 10.0
    killed = []
    with _streaming(pipeline, n, rate) as publisher:
        publisher.wait_sent(n // 10, timeout=120)
        for topic in ("training", "models", "features"):
            node = _leader(cluster, pipeline.settings().topic(topic))
            killed.append((topic, f"kafka-{node}", publisher.sent))
            _kill9_and_restart(cluster, node)
        publisher.speed_up(100.0)
    print("killed (topic led, node, events sent by then):", killed)
    late = [k for k in killed if k[2] >= n]
    assert not late, f"leaders killed after the stream ended: {late}"


def test_active_controller_killed(cluster: StackConfig, pipeline: Pipeline) -> None:
    with _streaming(pipeline) as publisher:
        publisher.wait_sent(N // 3, timeout=120)
        controller = active_controller(cluster)
        assert controller is not None, "no active controller found in the quorum-state files"
        _kill9_and_restart(cluster, controller)
        publisher.speed_up(100.0)  # the fault is over: the rest of the stream need not keep the 20/s pace
        new = active_controller(cluster)
        print(f"active controller: kafka-{controller}, then kafka-{new}")
        assert new is not None


# How long a stopped node stays away at least: past the broker session timeout (9 s), the workers' group session
# timeout (8 s, FAST_GROUP_ENV) and the trainers' (10 s, kafka.trainer_session_timeout_s). It was a fixed 20 s; a
# leadership slower to move than this is waited for (tspeed43). The frozen node keeps its fixed 20 s: waiting for
# its leadership to move instead saved nothing measurable (docs/experiments/tspeed43.md).
AWAY_S = 14.0


def _moved_off(cluster: StackConfig, topic: str, node: int, since: float) -> int:
    """The node leading ``topic`` once it is not ``node`` any more, and no earlier than AWAY_S after ``since``."""
    moved = wait_until(
        f"{topic}'s leadership to move off kafka-{node}",
        lambda: (leader := _leader(cluster, topic)) != node and leader,
        60,
        0.5,
    )
    time.sleep(max(0.0, since + AWAY_S - time.monotonic()))
    return moved


def test_broker_frozen_past_session_timeout(cluster: StackConfig, pipeline: Pipeline) -> None:
    """SIGSTOP the node leading ``training`` for 20 s: past the broker session timeout (9 s, the controller fences
    it and moves its leaderships) and the workers' group session timeout (8 s); then SIGCONT."""
    with _streaming(pipeline) as publisher:
        publisher.wait_sent(N // 3, timeout=120)
        node = _leader(cluster, pipeline.settings().topic("training"))
        pid = _pid(cluster, node)
        os.kill(pid, signal.SIGSTOP)
        try:
            time.sleep(20)
            moved = _leader(cluster, pipeline.settings().topic("training"))
        finally:
            os.kill(pid, signal.SIGCONT)
        assert moved != node, f"training still led by the frozen kafka-{node}"
        _wait_in_sync(cluster)


def test_broker_stopped_past_session_timeout(cluster: StackConfig, pipeline: Pipeline) -> None:
    """SIGTERM the node leading ``models`` (a controlled shutdown: its leaderships move while requests are in
    flight, which clients see as NOT_LEADER_OR_FOLLOWER), keep it down for AWAY_S (it was 20 s), then start it
    again."""
    with _streaming(pipeline) as publisher:
        publisher.wait_sent(N // 3, timeout=120)
        node = _leader(cluster, pipeline.settings().topic("models"))
        pid = _pid(cluster, node)
        os.kill(pid, signal.SIGTERM)
        _gone(pid, timeout=60)
        assert _moved_off(cluster, pipeline.settings().topic("models"), node, time.monotonic()) != node
        _up(cluster)
        _wait_in_sync(cluster)
        # The node is back in sync: the rest of the stream need not keep the 20/s pace.
        publisher.speed_up(100.0)


def test_a_producer_through_its_leader_killed_and_restarted_delivers_each_record_in_order(
    cluster: StackConfig, prefix: str
) -> None:
    """An EventProducer (as `driftline produce` and every stage use it) sending keyed records while the node leading
    its partition is killed -9 and restarted: every record is on the topic, in order per key, and once, unless its
    client got stuck and was replaced (then at most the records purged in flight appear twice). Session 39: the
    stuck client (~1 restart in 17) was waited on until the flush timed out; the replacement itself is forced in
    tests/test_producer_stuck.py, since a real restart rarely provokes it."""
    _up(cluster)
    settings = load_settings(
        environ={},
        overrides={
            "kafka.bootstrap": cluster.kafka_address,
            "kafka.topic_prefix": prefix,
            "kafka.replication_factor": 3,
            "kafka.partitions": 2,
        },
    )
    ensure_topics(settings, ("features",))
    producer = EventProducer(settings, stuck_after_s=10.0)
    stop = threading.Event()
    sent: list[int] = []

    def send() -> None:
        i = 0
        while not stop.is_set():
            producer.send_feature(f"p-{i:06d}", {"seq": i}, key=f"k{i % 4}")
            sent.append(i)
            producer.poll(0.01)
            i += 1

    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    try:
        wait_until("200 records sent", lambda: len(sent) >= 200, 60, 0.1)
        _kill9_and_restart(cluster, _leader(cluster, settings.topic("features")))
        time.sleep(3)
    finally:
        stop.set()
        sender.join(30)
    producer.close(timeout=120)
    records = sorted(
        (r for r in read_records(settings, "features") if r.value), key=lambda r: (r.partition, r.offset)
    )
    ids = [r.value["id"] for r in records]
    assert sorted(set(ids)) == [f"p-{i:06d}" for i in sent]
    repeated = len(ids) - len(set(ids))
    print(f"sent {len(sent)}, replaced {producer.replaced}, resent {producer.resent}, repeated {repeated}")
    if producer.replaced == 0:
        assert repeated == 0
    else:
        assert repeated <= producer._purged.in_flight
    for key in ("k0", "k1", "k2", "k3"):
        firsts = list(dict.fromkeys(r.value["features"]["seq"] for r in records if r.key == key.encode()))
        assert [int(s) for s in firsts] == sorted(int(s) for s in firsts), f"{key} out of order"
