"""Helpers for tests that run the real pipeline: worker processes, the CLI, topics read to the end, metrics.

A :class:`Pipeline` is one test's world: its topic prefix, state directory, Redis key prefix and signing key,
handed to every ``driftline`` process through the environment (never through ``os.environ`` of the test run).
Waits are bounded; a wait that times out fails with the tail of every worker's log, so a failure says why.

Used by ``tests/test_pipeline_*.py`` and the fault-injection tests.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from confluent_kafka import Producer
from prometheus_client.parser import text_string_to_metric_families

from connectors.consumer import Received
from connectors.producer import EventProducer
from connectors.tail import assign_tail, read_until_end
from connectors.topics import ensure_topics
from driftline.settings import Settings, load_settings
from learners.artifacts import ArtifactStore, load_release
from schemas.codec import default_codec
from streams import metrics_text
from streams.processes import WorkerProcess
from streams.trainer_status import trainer_status
from tests.waiting import wait_until

KAFKA_BOOTSTRAP = os.environ.get("DRIFTLINE_TEST_KAFKA", "127.0.0.1:9092")  # as tests/conftest.py
SIGNING_KEY = "pipeline-test-key-0123456789abcdef0123456789"
CLI_TIMEOUT_S = 120.0

T = TypeVar("T")


def labels_learned(status: Mapping[str, Any]) -> int:
    """Labels the trainer has learned in all, each once (``labels_learned`` of its live status).

    Not ``n_learned``: that is the served lineage's count, and a probation rollback (which the default ``auto``
    pool's tree member can legitimately cause on a few hundred labels) takes it back to the restored version's.
    """
    return int(status.get("labels_learned", 0)) if status else 0


@dataclass
class Pipeline:
    """One test's pipeline: environment for ``driftline`` processes, and the workers it started."""

    prefix: str
    state_dir: Path
    redis_url: str
    extra_env: dict[str, str] = field(default_factory=dict)
    workers: list[WorkerProcess] = field(default_factory=list)

    # -- configuration -------------------------------------------------------------------------------------------
    def env(self) -> dict[str, str]:
        """The environment of every ``driftline`` process of this test (inherited DRIFTLINE_* dropped)."""
        base = {k: v for k, v in os.environ.items() if not k.startswith("DRIFTLINE")}
        base.update(
            {
                "DRIFTLINE_KAFKA_BOOTSTRAP": KAFKA_BOOTSTRAP,
                "DRIFTLINE_TOPIC_PREFIX": self.prefix,
                "DRIFTLINE_SIGNING_KEY": SIGNING_KEY,
                "DRIFTLINE_STATE_DIR": str(self.state_dir),
                "DRIFTLINE_REDIS_URL": self.redis_url,
                # Redis keys start with the test prefix, so the end-of-run cleanup of conftest removes them.
                "DRIFTLINE__REDIS__KEY_PREFIX": self.prefix.rstrip("."),
                "DRIFTLINE__MODEL__ARTIFACT_STORE": str(self.state_dir / "artifacts"),
                "DRIFTLINE__KAFKA__CLIENT_ID": f"driftline-{self.prefix.rstrip('.')}",
                "PYTHONUNBUFFERED": "1",
            }
        )
        base.update(self.extra_env)
        return base

    def settings(self) -> Settings:
        """The settings the workers see (same environment)."""
        return load_settings(environ=self.env())

    # -- processes -----------------------------------------------------------------------------------------------
    def start(self, *roles: str, timeout: float = 90.0) -> list[WorkerProcess]:
        """Start one worker process per role (``all``, ``score``, ``join``, ``train``) and wait for their metrics."""
        ensure_topics(
            self.settings()
        )  # the workers create them too; doing it once first avoids a creation race
        started = []
        for role in roles:
            n = sum(1 for w in self.workers if w.role == role)
            log_path = self.state_dir / "logs" / f"worker-{role}-{n}.log"
            worker = WorkerProcess(role, self.env(), log_path)
            self.workers.append(worker)
            started.append(worker.start())
        for worker in started:
            if not worker.wait_metrics(timeout):
                raise AssertionError(f"worker {worker.role} did not start:\n{self.logs()}")
        return started

    def stop(self) -> None:
        """SIGTERM every worker started here (SIGKILL after a grace period)."""
        for worker in self.workers:
            worker.stop(timeout=20)

    def logs(self, n: int = 40) -> str:
        """The tail of every worker's log and its main counters, for failure messages."""
        parts = []
        for w in self.workers:
            state = "running" if w.alive() else f"exited {w.proc.returncode if w.proc else None}"
            pid = w.proc.pid if w.proc else "-"
            parts.append(f"--- {w.role} pid {pid} ({state}) {w.log_path}\n{w.log_tail(n)}")
            if w.alive():
                parts.append(f"    metrics: {counters(w)}")
        return "\n".join(parts)

    def assert_alive(self) -> None:
        dead = [w for w in self.workers if not w.alive()]
        assert not dead, f"worker(s) {[w.role for w in dead]} died:\n{self.logs()}"

    # -- the command line ----------------------------------------------------------------------------------------
    def cli(
        self, *args: str, check: bool = True, timeout: float = CLI_TIMEOUT_S
    ) -> subprocess.CompletedProcess[str]:
        """Run ``driftline ARGS`` with this pipeline's environment."""
        cmd = [sys.executable, "-m", "streams.cli", *args]
        proc = subprocess.run(cmd, capture_output=True, text=True, env=self.env(), timeout=timeout)
        if check:
            assert proc.returncode == 0, (
                f"driftline {' '.join(args)} exited {proc.returncode}:\n{proc.stderr}"
            )
        return proc

    def cli_json(self, *args: str) -> list[dict[str, Any]]:
        """Run a ``--json`` command and parse one JSON object per output line."""
        return [json.loads(line) for line in self.cli(*args).stdout.splitlines() if line.strip()]

    def produce_synthetic(
        self,
        stream: str,
        events: int,
        *,
        seed: int = 3,
        label_delay: int = 0,
        rate: float | None = None,
        position: int | None = None,
        extra: Sequence[str] = (),
    ) -> dict[str, Any]:
        """``driftline produce synthetic``; returns its JSON summary."""
        args = ["produce", "synthetic", "--stream", stream, "--events", str(events), "--seed", str(seed)]
        args += ["--label-delay", str(label_delay), "--json", *extra]
        if rate is not None:
            args += ["--rate", str(rate)]
        if position is not None:
            args += ["--position", str(position)]
        result: dict[str, Any] = json.loads(self.cli(*args, timeout=300).stdout)
        return result

    # -- in-process producing and reading ------------------------------------------------------------------------
    @contextmanager
    def producer(self) -> Iterator[EventProducer]:
        with EventProducer(self.settings()) as producer:
            yield producer

    def send_raw(self, topic: str, values: Iterable[bytes], key: bytes | None = None) -> None:
        """Publish raw bytes (garbage included) to a contract topic."""
        settings = self.settings()
        with EventProducer(settings) as producer:
            for value in values:
                producer.produce_bytes(settings.topic(topic), value, key)

    def send_raw_at(
        self, topic: str, values: Sequence[bytes], key: bytes | None = None, partition: int | None = None
    ) -> list[tuple[int, int]]:
        """Publish raw bytes to a contract topic (on ``partition``, else where the client's partitioner puts
        ``key``); returns ``(partition, offset)`` of each, in order."""
        settings = self.settings()
        producer = Producer({"bootstrap.servers": KAFKA_BOOTSTRAP, "linger.ms": 0})
        where: dict[int, tuple[int, int]] = {}

        def report(k: int) -> Callable[[Any, Any], None]:
            def on_delivery(err: Any, msg: Any) -> None:
                assert err is None, f"could not publish garbage record {k} to {topic}: {err}"
                where[k] = (int(msg.partition()), int(msg.offset()))

            return on_delivery

        for k, value in enumerate(values):
            where_to = {} if partition is None else {"partition": partition}
            producer.produce(settings.topic(topic), value, key, on_delivery=report(k), **where_to)
        producer.flush(30)
        assert len(where) == len(values), f"{topic}: only {len(where)} of {len(values)} records delivered"
        return [where[k] for k in range(len(values))]

    def read(self, topic: str) -> list[Received]:
        """Every record of a contract topic, read to the current end and decoded (merged by timestamp)."""
        settings = self.settings()
        consumer, ends = assign_tail(settings, topic, None)
        try:
            return read_until_end(consumer, default_codec(), topic, ends)
        finally:
            consumer.close()

    def values(self, topic: str) -> list[dict[str, Any]]:
        """Decoded values of a topic; fails on a record that does not decode (outputs must always decode)."""
        records = self.read(topic)
        bad = [r for r in records if not r.ok]
        assert not bad, f"{topic}: {len(bad)} undecodable record(s), first: {bad[0].error}"
        return [r.value for r in records if r.value is not None]

    def releases(self) -> list[dict[str, Any]]:
        """Releases of the model on ``models``, by version."""
        return sorted(self.values("models"), key=lambda r: int(r["version"]))

    def releases_in_order(self) -> list[dict[str, Any]]:
        """Every committed release on ``models`` (all models), in topic order."""
        records = self.read("models")
        records.sort(key=lambda r: (r.partition, r.offset))
        return [r.value for r in records if r.value is not None]

    def load_model(self, release: Mapping[str, Any]) -> Any:
        """Verify and load a release's model as a scorer would."""
        settings = self.settings()
        store = ArtifactStore(settings.model.artifact_store)
        return load_release(release, key=SIGNING_KEY.encode(), store=store)[1]

    def trainer_state(self, model: str = "default") -> dict[str, Any]:
        """``model``'s committed trainer state, read from the ``changelog`` topic and verified."""
        from connectors.changelog import read_changelog
        from connectors.topics import partition_for
        from streams.train import unseal

        settings = self.settings()
        part = partition_for(model, settings.kafka.training_partitions)
        sealed = read_changelog(settings, [part], timeout=30).get(model)
        assert sealed is not None, f"no trainer state of {model!r} on {settings.topic('changelog')}"
        return unseal(sealed, [SIGNING_KEY.encode()], "changelog")

    def trainer(self) -> dict[str, Any]:
        """The trainer's live status (``n_learned``, ``served_version``, ``paused``) from Redis."""
        return trainer_status(self.settings()) or {}

    # -- metrics -------------------------------------------------------------------------------------------------
    def metric(self, worker: WorkerProcess, name: str, **labels: str) -> float:
        """Sum of the samples of ``name`` whose labels include ``labels`` (0.0 when absent)."""
        return metric_value(worker.metrics_text(), name, **labels)

    def metric_sum(self, name: str, **labels: str) -> float:
        """``name`` summed over every live worker of this pipeline."""
        return sum(self.metric(w, name, **labels) for w in self.workers if w.alive())

    # -- waiting -------------------------------------------------------------------------------------------------
    def wait_until(
        self, what: str, predicate: Callable[[], T], timeout: float = 60.0, interval: float = 0.5
    ) -> T:
        """Poll ``predicate`` until it returns something truthy; fail with ``what`` and the worker logs (at once
        when a worker died)."""

        def dead() -> str | None:
            gone = [w.role for w in self.workers if not w.alive()]
            return f"worker(s) {gone} died" if gone else None

        return wait_until(what, predicate, timeout, interval, abort=dead, context=self.logs)

    def settle(self, predicate: Callable[[], Any], timeout: float = 10.0, interval: float = 0.5) -> bool:
        """Poll ``predicate`` for up to ``timeout``; whether it became truthy (never raises: the caller's
        assertions then say precisely what is missing)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if predicate():
                    return True
            except Exception:  # not reachable yet: keep polling
                pass
            time.sleep(interval)
        return False

    def wait_releases(self, n: int, timeout: float = 60.0) -> list[dict[str, Any]]:
        """Wait until the model has at least ``n`` releases on ``models``; returns them by version."""

        def enough() -> list[dict[str, Any]]:
            releases = self.releases()
            return releases if len(releases) >= n else []

        return self.wait_until(f"{n} releases", enough, timeout)

    def labels_learned(self) -> int:
        """Labels the trainer has learned in all (see :func:`labels_learned`)."""
        return labels_learned(self.trainer())

    def wait_learned(self, n: int, timeout: float = 90.0) -> dict[str, Any]:
        """Wait until the trainer has learned at least ``n`` labels in all; returns its status."""
        return self.wait_until(
            f"{n} labels learned", lambda: (s := self.trainer()) and labels_learned(s) >= n and s, timeout
        )

    def wait_settled(self, metric: str, timeout: float = 90.0, quiet_s: float = 3.0, **labels: str) -> float:
        """Wait until ``metric`` (summed over the workers) stops changing for ``quiet_s``; returns its value."""
        deadline = time.monotonic() + timeout
        last, since = self.metric_sum(metric, **labels), time.monotonic()
        while time.monotonic() < deadline:
            time.sleep(0.5)
            value = self.metric_sum(metric, **labels)
            if value != last:
                last, since = value, time.monotonic()
            elif time.monotonic() - since >= quiet_s:
                return value
        raise AssertionError(f"{metric}{labels} still changing after {timeout:.0f} s\n{self.logs()}")


def metric_value(text: str, name: str, **labels: str) -> float:
    """Sum of the samples called ``name`` in Prometheus text whose labels include ``labels`` (0 when none)."""
    return metrics_text.metric_value(text, name, labels) or 0.0


SUMMARY_METRICS = (
    "driftline_events_total",
    "driftline_joins_total",
    "driftline_served_model_version",
    "driftline_n_learned",
    "driftline_consumer_lag",
    "driftline_deadletters_total",
)


def counters(worker: WorkerProcess) -> str:
    """A one-line summary of a worker's main metrics (non-zero samples only)."""
    try:
        text = worker.metrics_text(2.0)
    except OSError as exc:
        return f"unavailable ({exc})"
    out = []
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name in SUMMARY_METRICS and sample.value:
                labels = ",".join(f"{k}={v}" for k, v in sample.labels.items() if k != "model")
                out.append(f"{sample.name.removeprefix('driftline_')}{{{labels}}}={sample.value:g}")
    return " ".join(out) or "all zero"


def distinct_ids(records: Iterable[Mapping[str, Any]]) -> set[str]:
    return {str(r["id"]) for r in records}


def accuracy(pairs: Sequence[tuple[Any, Any]]) -> float:
    """Share of ``(prediction, label)`` pairs that agree."""
    return sum(1 for p, y in pairs if p == y) / len(pairs) if pairs else 0.0


@contextmanager
def running(pipeline: Pipeline) -> Iterator[Pipeline]:
    """Stop every worker of ``pipeline`` when the block ends, whatever happens."""
    try:
        yield pipeline
    finally:
        pipeline.stop()
