"""One benchmark run's surroundings: a fresh topic prefix, its settings, worker processes, the machine, cleanup.

Every run gets its own topic prefix and Redis key prefix (``bench-<hex>.``), so runs never read each other's
events, and everything created under that prefix is deleted at the end (unless ``keep`` is set).
"""

from __future__ import annotations

import contextlib
import os
import platform
import secrets
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from confluent_kafka.admin import AdminClient

from connectors.kafka_client import client_config
from connectors.redis_store import redis_client
from connectors.topics import ensure_topics
from driftline.settings import Settings, load_settings
from streams.processes import WorkerProcess


def progress(message: str) -> None:
    """Progress goes to stderr so ``--json`` output on stdout stays one clean object."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def machine_info() -> dict[str, Any]:
    """What the numbers were measured on: cores, CPU model, RAM, Python and library versions."""
    cpu = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    ram_gb = 0.0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                ram_gb = round(int(line.split()[1]) / 1024 / 1024, 1)
                break
    except OSError:
        pass
    import confluent_kafka
    import faust
    import river

    return {
        "nproc": os.cpu_count() or 0,
        "cpu_model": cpu,
        "ram_gb": ram_gb,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "river": river.__version__,
        "faust_streaming": faust.__version__,
        "confluent_kafka": confluent_kafka.version()[0],
        "librdkafka": confluent_kafka.libversion()[0],
    }


@dataclass
class BenchEnv:
    """Settings and worker processes for one benchmark run under a fresh prefix."""

    base: Settings
    keep: bool = False
    prefix: str = field(default_factory=lambda: f"bench-{secrets.token_hex(4)}.")
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="driftline-bench-")))
    workers: list[WorkerProcess] = field(default_factory=list)
    signing_key: str = field(default_factory=lambda: secrets.token_hex(32))

    def settings(self, model: str, learner: str, params: Mapping[str, Any] | None = None) -> Settings:
        """Settings for one model of this run: topics of its own (``<run prefix><model>.``), so one
        measurement never reads another's events."""
        return load_settings(config_file=self.config_file(model, learner, params), environ={})

    def config_file(self, model: str, learner: str, params: Mapping[str, Any] | None = None) -> Path:
        """A YAML file holding everything a worker of ``model`` needs (workers get it via DRIFTLINE_CONFIG)."""
        b = self.base
        k = b.kafka
        # How to reach a secured cluster, as configured: the workers no longer inherit the operator's nested
        # DRIFTLINE__KAFKA__* variables (worker_env), and a config file's never reached them. The file is the
        # owner's only, as it holds the run's signing key already.
        connection = {
            "security_protocol": k.security_protocol,
            "sasl_mechanism": k.sasl_mechanism,
            "sasl_username": k.sasl_username,
            "sasl_password": k.sasl_password.get() or None,
            "ssl_cafile": k.ssl_cafile,
            "ssl_certfile": k.ssl_certfile,
            "ssl_keyfile": k.ssl_keyfile,
            "ssl_key_password": k.ssl_key_password.get() or None,
            "ssl_check_hostname": k.ssl_check_hostname,
        }
        doc = {
            # Replication as configured, so a run against a multi-broker cluster measures replicated topics.
            "kafka": {
                "bootstrap": k.bootstrap,
                "topic_prefix": f"{self.prefix}{model}.",
                "replication_factor": k.replication_factor,
                **{key: value for key, value in connection.items() if value is not None},
            },
            "redis": {"url": b.redis.url.get(), "key_prefix": self.prefix.rstrip(".")},
            "model": {
                "name": model,
                "learner": {"name": learner, "params": dict(params or {})},
                "signing_key": self.signing_key,
                "artifact_store": str(self.workdir / "artifacts"),
            },
            "state_dir": str(self.workdir / "state"),
        }
        path = self.workdir / f"{model}.yaml"
        path.write_text(yaml.safe_dump(doc))
        path.chmod(0o600)  # it holds the run's signing key
        return path

    def ensure_topics(self, settings: Settings) -> None:
        ensure_topics(settings)

    def worker_env(
        self, model: str, learner: str, params: Mapping[str, Any] | None = None
    ) -> dict[str, str | None]:
        """The environment a worker of ``model`` gets over this process's (None removes a variable): the run's
        config file, and nothing of the operator's settings that would override it."""
        env: dict[str, str | None] = {"DRIFTLINE_CONFIG": str(self.config_file(model, learner, params))}
        # The worker reads these from its own environment first: make sure ours cannot leak in. The key's _FILE
        # form too: with DRIFTLINE_SIGNING_KEY_FILE exported (as README's Docker section says to), the workers
        # signed and verified with the operator's key and refused the run's releases (session 34).
        for var in (
            "DRIFTLINE_TOPIC_PREFIX",
            "DRIFTLINE_MODEL",
            "DRIFTLINE_STATE_DIR",
            "DRIFTLINE_SIGNING_KEY",
            "DRIFTLINE_SIGNING_KEY_FILE",
            "DRIFTLINE_PREVIOUS_SIGNING_KEY",
            "DRIFTLINE_PREVIOUS_SIGNING_KEY_FILE",
        ):
            env[var] = None  # removed: an empty DRIFTLINE_TOPIC_PREFIX (...) is an error since session 42
        # Nested settings (DRIFTLINE__SECTION__FIELD) override the run's file too (a DRIFTLINE__MODEL__LEARNER
        # would change what is measured), and an empty one is not "unset": remove them (audit34, session 34).
        env.update({var: None for var in os.environ if var.startswith("DRIFTLINE__")})
        return env

    def start_worker(
        self, role: str, model: str, learner: str, params: Mapping[str, Any] | None = None, tag: str = ""
    ) -> WorkerProcess:
        """Start ``driftline worker --role ROLE`` for ``model`` and wait until its metrics endpoint answers."""
        env = self.worker_env(model, learner, params)
        name = f"{model}-{role}{tag}-{len(self.workers)}"
        worker = WorkerProcess(role, env, self.workdir / "logs" / f"{name}.log").start()
        self.workers.append(worker)
        if not worker.wait_metrics(90):
            raise RuntimeError(f"worker {name} did not start:\n{worker.log_tail()}")
        return worker

    def stop_worker(self, worker: WorkerProcess) -> None:
        worker.stop(30)
        if worker in self.workers:
            self.workers.remove(worker)

    def close(self) -> None:
        """Stop this run's workers (only those started here) and delete this run's topics, consumer groups and
        Redis keys. A second Ctrl-C or SIGTERM meanwhile is ignored: it stopped the clean-up half way and left the
        run's topics on the broker (review34b)."""
        with _interrupts_ignored():
            self._close()

    def _close(self) -> None:
        for worker in list(self.workers):
            worker.stop(30)
        self.workers.clear()
        if self.keep:
            progress(f"kept topics with prefix {self.prefix!r} and {self.workdir}")
            return
        try:
            admin = AdminClient(client_config(self.base))
            topics = [t for t in admin.list_topics(timeout=10).topics if t.startswith(self.prefix)]
            if topics:
                for future in admin.delete_topics(topics, operation_timeout=30).values():
                    with contextlib.suppress(Exception):  # best effort: a leftover topic is harmless
                        future.result()
        except Exception as exc:
            progress(f"could not delete topics of {self.prefix}: {exc}")
        try:  # the workers' groups (driftline-<prefix>...) and the hand-written loop's (<prefix>...)
            admin = AdminClient(client_config(self.base))
            listed = admin.list_consumer_groups(request_timeout=10).result().valid
            groups = [
                g.group_id for g in listed if g.group_id.startswith((f"driftline-{self.prefix}", self.prefix))
            ]
            if groups:
                for future in admin.delete_consumer_groups(groups, request_timeout=10).values():
                    with contextlib.suppress(Exception):  # best effort, as the topics
                        future.result()
        except Exception as exc:
            progress(f"could not delete consumer groups of {self.prefix}: {exc}")
        try:
            client = redis_client(self.base)
            keys = list(client.scan_iter(match=f"{self.prefix.rstrip('.')}*", count=1000))
            for i in range(0, len(keys), 500):
                client.delete(*keys[i : i + 500])
        except Exception as exc:
            progress(f"could not delete Redis keys of {self.prefix}: {exc}")


@contextlib.contextmanager
def _interrupts_ignored() -> Iterator[None]:
    """SIGINT and SIGTERM ignored inside (main thread only: elsewhere signals are the main thread's anyway)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    before = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in before.items():
            signal.signal(sig, handler)


def busy_seconds(stat: str | None = None) -> float | None:
    """CPU seconds every process on the machine has been busy so far, all cores together: ``/proc/stat``'s ``cpu``
    line less idle and iowait (``stat``: that file's text; None off Linux). Why: a worker's own CPU per label rises
    with the load beside it (cache and scheduler contention), so a figure is reported with the load it was measured
    under (BENCHMARKS.md, session 24: two set-ups 15-35 us a label apart were runs at different loads)."""
    if stat is None:
        try:
            stat = Path("/proc/stat").read_text()
        except OSError:
            return None
    fields = stat.split("\n", 1)[0].split()
    if not fields or fields[0] != "cpu":
        return None
    # user nice system idle iowait irq softirq steal (guest time is counted in user already)
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in fields[1:9])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` (all its threads) so far, from ``/proc/<pid>/stat``."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
