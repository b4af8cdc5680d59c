"""Fixtures shared by every test module.

- ``stack`` (session): the local Kafka and Redis, brought up once per run by
  :func:`connectors.stack.ensure_stack` (servers already answering on 127.0.0.1:9092 / 6379 are reused).
  Tests marked ``kafka`` (or ``faults``) get it automatically, so ``pytest -m "not kafka"`` never needs Java.
- ``prefix``: a random topic prefix per test (``t-1a2b3c4d.``); every topic, consumer group and Redis key a
  test creates must start with it. Whatever starts with a prefix of this run is deleted when the run ends.
- ``settings``: a :class:`Settings` for one test: that prefix, the test Redis database, a tmp state dir, a
  signing key and a free metrics port.
- ``redis_url``: the test Redis database URL.
"""

from __future__ import annotations

import logging
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

import connectors.stack
from connectors.localproc import free_port
from connectors.stack import StackStatus, ensure_stack
from driftline.settings import Settings, load_settings

log = logging.getLogger(__name__)

# A stack of one's own (other ports, while the shared one is busy): DRIFTLINE_TEST_KAFKA / DRIFTLINE_TEST_REDIS.
KAFKA_BOOTSTRAP = os.environ.get("DRIFTLINE_TEST_KAFKA", "127.0.0.1:9092")
# Tests share one Redis database, away from the demo's database 0; keys are namespaced by the test prefix.
REDIS_URL = os.environ.get("DRIFTLINE_TEST_REDIS", "redis://127.0.0.1:6379/15")
if ("DRIFTLINE_TEST_KAFKA" in os.environ) != ("DRIFTLINE_TEST_REDIS" in os.environ):
    # One of a stack of one's own and the other from the shared one: the tests would write topics (or keys) on a
    # stack somebody else is using (it happened, session 31). Name both or neither.
    raise pytest.UsageError(
        "set both DRIFTLINE_TEST_KAFKA and DRIFTLINE_TEST_REDIS (a stack of your own) or neither (the default "
        "127.0.0.1:9092 and 127.0.0.1:6379)"
    )
STACK_MARKERS = ("kafka", "faults")
DEFAULT_KAFKA_PORTS, DEFAULT_REDIS_PORT = (9092, 9093), 6379
if "DRIFTLINE_TEST_KAFKA" in os.environ:
    # A stack of one's own: whatever a test runs without naming an address must go to it, never to the shared
    # 9092/6379. The CLI run in-process (``main([...])``) and every child that inherits this environment read
    # DRIFTLINE_KAFKA_BOOTSTRAP / DRIFTLINE_REDIS_URL, which a shell that set only the test variables lacks
    # (session 40: a stack appeared on 9092/6379 during a run with the test variables set elsewhere).
    os.environ["DRIFTLINE_KAFKA_BOOTSTRAP"] = KAFKA_BOOTSTRAP
    os.environ["DRIFTLINE_REDIS_URL"] = REDIS_URL
    _OWN_PORTS = {int(KAFKA_BOOTSTRAP.split(",")[0].rpartition(":")[2]), urlsplit(REDIS_URL).port or 6379}

    _SHARED_STATE = (Path.home() / ".driftline" / "stack").resolve()

    def _refuse_the_default_ports(act: Any, verb: str) -> Any:
        """``act`` (stack_up or stack_down) refusing the shared stack: its ports, or (stopping) its state directory,
        which a test run without DRIFTLINE_STATE_DIR names (session 42: the shared stack was stopped under a CI run
        while helpers ran tests on stacks of their own; the culprit was not found, this closes the tests' way)."""

        def guarded(settings: Any, state_dir: Any = None, **kwargs: Any) -> Any:
            cfg = connectors.stack._config(settings, state_dir)
            # A start on the own stack's Kafka port reuses it (its controller port is not looked at); a stop goes
            # by the state directory's pid files, whatever the ports.
            wanted = {cfg.kafka_port, cfg.redis_port}
            if cfg.kafka_port not in _OWN_PORTS:
                wanted.add(cfg.controller_port)
            shared = wanted & {*DEFAULT_KAFKA_PORTS, DEFAULT_REDIS_PORT} - _OWN_PORTS
            if (verb == "start" and shared) or (
                verb == "stop" and Path(cfg.state_dir).resolve() == _SHARED_STATE
            ):
                pytest.fail(
                    f"a test asked to {verb} a stack on port(s) {sorted(wanted)} in {cfg.state_dir} while "
                    f"DRIFTLINE_TEST_KAFKA / DRIFTLINE_TEST_REDIS name a stack of your own ({KAFKA_BOOTSTRAP}, "
                    f"{REDIS_URL}): the default ports and {_SHARED_STATE} are the shared stack's; give the test "
                    "free ports and a state directory of its own",
                    pytrace=False,
                )
            return act(settings, state_dir, **kwargs)

        return guarded

    connectors.stack.stack_up = _refuse_the_default_ports(connectors.stack.stack_up, "start")
    connectors.stack.stack_down = _refuse_the_default_ports(connectors.stack.stack_down, "stop")

# Prefixes handed out in this run, for the end-of-run cleanup.
_PREFIXES: set[str] = set()


@pytest.fixture(scope="session")
def stack() -> Iterator[StackStatus]:
    """The local stack, up for the whole run; topics, groups and keys of this run's prefixes removed after."""
    status = ensure_stack(
        load_settings(environ={}, overrides={"kafka.bootstrap": KAFKA_BOOTSTRAP, "redis.url": REDIS_URL})
    )
    yield status
    _cleanup(sorted(p.rstrip(".") for p in _PREFIXES))


@pytest.fixture(autouse=True)
def _stack_for_marked_tests(request: pytest.FixtureRequest) -> None:
    # Only integration tests pay for the broker; the fast tier never touches Java.
    if any(request.node.get_closest_marker(m) for m in STACK_MARKERS):
        request.getfixturevalue("stack")


@pytest.fixture
def prefix() -> str:
    """A random topic prefix for one test, e.g. ``t-1a2b3c4d.``."""
    value = f"t-{secrets.token_hex(4)}."
    _PREFIXES.add(value)
    return value


@pytest.fixture
def redis_url() -> str:
    """The Redis URL tests use (database 15 of the local Redis); namespace keys with ``prefix``."""
    return REDIS_URL


@pytest.fixture
def settings(prefix: str, redis_url: str, tmp_path: Path) -> Settings:
    """Settings for one test: its own topic prefix, Redis key prefix, state dir and metrics port."""
    return load_settings(
        environ={},
        overrides={
            "kafka.bootstrap": KAFKA_BOOTSTRAP,
            "kafka.topic_prefix": prefix,
            "kafka.client_id": f"driftline-{prefix.rstrip('.')}",
            "redis.url": redis_url,
            "redis.key_prefix": prefix.rstrip("."),
            "model.signing_key": "test-key-0123456789abcdef0123456789abcdef",
            "model.artifact_store": str(tmp_path / "artifacts"),
            "metrics.port": free_port(),
            "state_dir": str(tmp_path),
        },
    )


def _cleanup(stems: list[str]) -> None:
    """Best effort: delete topics, consumer groups and Redis keys that start with one of ``stems``."""
    if not stems:
        return
    try:
        _cleanup_kafka(tuple(stems))
    except Exception as exc:  # cleanup must never fail the run
        log.warning("could not delete test topics: %s", exc)
    try:
        _cleanup_redis(tuple(stems))
    except Exception as exc:
        log.warning("could not delete test Redis keys: %s", exc)


def _cleanup_kafka(stems: tuple[str, ...]) -> None:
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": KAFKA_BOOTSTRAP, "logger": log})
    topics = [t for t in admin.list_topics(timeout=10).topics if t.startswith(stems)]
    if topics:
        for future in admin.delete_topics(topics, operation_timeout=30).values():
            future.result()
    groups = admin.list_consumer_groups(request_timeout=10).result()
    # Worker groups are named after the Faust app: ``driftline-<prefix><model>-<roles>``.
    owned = stems + tuple(f"driftline-{stem}" for stem in stems)
    names = [g.group_id for g in groups.valid if g.group_id.startswith(owned)]
    if names:
        for future in admin.delete_consumer_groups(names, request_timeout=10).values():
            try:
                future.result()
            except Exception:  # a group still shutting down; it expires on its own
                continue


def _cleanup_redis(stems: tuple[str, ...]) -> None:
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    try:
        for stem in stems:
            keys = list(client.scan_iter(match=f"{stem}*", count=1000))
            if keys:
                client.delete(*keys)
    finally:
        client.close()
