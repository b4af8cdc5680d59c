"""Run the demo: stack, run-scoped topics and state, three worker processes, a paced producer, monitoring.

:class:`DemoRun` owns everything it starts and stops exactly that: the worker processes it spawned (by pid)
and the local stack only when it was the one to start it. Ctrl-C stops the producer (labels already owed are
still sent), lets the workers drain, then stops them with SIGTERM; a second Ctrl-C skips the drain.

:meth:`DemoRun.run` stops the workers but leaves the stack up: the report is read from the run's topics
afterwards, so the stack the demo started is stopped only by :meth:`DemoRun.close` (use the run as a context
manager), once the report is written. Stopping it in ``run`` broke the report on every machine where the demo
had to start the stack itself: a new user's first ``make demo``.
"""

from __future__ import annotations

import json
import os
import secrets
import shlex
import shutil
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from connectors.kafka_view import KafkaView
from connectors.producer import EventProducer
from connectors.publish import publish
from connectors.sources import Event, open_source
from connectors.stack import ensure_stack, stack_down, stack_status
from connectors.topics import ensure_topics
from driftline.errors import StackError
from driftline.settings import ENV_VARS, Settings, load_settings, nested_path
from streams.demo.probe import Sample, scrape
from streams.demo.stream import DEMO_STREAM, DriftPoint, demo_stream
from streams.processes import WorkerProcess

__all__ = ["DemoOptions", "DemoResult", "DemoRun", "read_decisions"]

ROLES = ("train", "score", "join")  # the trainer first: it publishes v1, which the scorer waits for
SAMPLE_EVERY_S = 0.5
LAG_EVERY_S = 1.0
STALL_S = 20.0  # seconds without a scored event, while events wait, before the view says so
STARTUP_TIMEOUT_S = 90.0


def cli_invocation() -> str:
    """How a shell runs this same driftline: ``driftline`` when that is what PATH finds, else this virtualenv's
    script (a newcomer's ``make demo`` ran ``.venv/bin/driftline``, which is on no PATH: the printed command
    said ``driftline ...`` and the shell answered "command not found", session 39)."""
    here = Path(sys.executable).parent / "driftline"  # not resolved: a virtualenv's python is a symlink
    found = shutil.which("driftline")
    if found and here.exists() and Path(found).resolve() == here.resolve():
        return "driftline"
    return shlex.quote(str(here)) if here.exists() else f"{shlex.quote(sys.executable)} -m driftline"


@dataclass(frozen=True)
class DemoOptions:
    """What ``driftline demo`` was asked to do."""

    events: int = 12_000
    rate: float = 100.0  # events per second: the default 12,000 events take about two minutes
    label_delay: int = 300
    seed: int = 7
    file: str | None = None
    label_col: str | None = None
    id_col: str | None = None
    keep_stack: bool = False
    drain_timeout_s: float = 90.0
    topic_prefix: str | None = None  # default: a fresh demo-<time>-<hex>. per run
    config_file: str | None = None
    models: int = 1  # >1: the stream is spread over this many models by a `tenant` feature

    @property
    def model_names(self) -> list[str]:
        return [f"tenant-{k:02d}" for k in range(self.models)] if self.models > 1 else []


@dataclass
class DemoResult:
    """What happened: samples over time, counts sent, the known drifts and how the run ended."""

    settings: Settings
    run_dir: Path
    samples: list[Sample] = field(default_factory=list)
    features_sent: int = 0
    labels_sent: int = 0
    produce_s: float = 0.0
    drifts: list[DriftPoint] = field(default_factory=list)
    outcome: str = "completed"  # completed | interrupted | timeout
    problem: str = ""  # why a run did not complete, for the user
    source: str = ""
    label_delay: int = 0
    worker_exit: dict[str, int | None] = field(default_factory=dict)

    @property
    def audit_path(self) -> Path:
        """The trainer's audit log of the run's model (its guard decisions and releases)."""
        s = self.settings
        return self.run_dir / "audit" / f"{s.kafka.topic_prefix}{s.model.name}.jsonl"


def read_decisions(path: Path, last: int = 5) -> list[dict[str, Any]]:
    """The last guard decisions from a trainer's audit log (``<state_dir>/audit/<prefix><model>.jsonl``)."""
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return []
    out = []
    for line in reversed(lines):
        try:
            rec = json.loads(line)
        except ValueError:
            continue  # a line being written right now
        if rec.get("kind") == "decision":
            out.append(rec)
            if len(out) >= last:
                break
    return out[::-1]


class DemoRun:
    """One demo run. ``run(on_sample)`` does everything; ``on_sample(run, sample)`` is called ~2x per second."""

    def __init__(self, base: Settings, options: DemoOptions) -> None:
        self.options = options
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        self.prefix = options.topic_prefix or f"demo-{stamp}-{secrets.token_hex(2)}."
        self.run_dir = Path(base.state_dir).expanduser() / "demo" / self.prefix.rstrip(".")
        self._key = secrets.token_hex(32)  # a fresh signing key: releases of this run verify only here
        self.settings = load_settings(
            options.config_file,
            overrides={
                "kafka.bootstrap": base.kafka.bootstrap,
                "redis.url": base.redis.url.get(),
                "model.name": base.model.name,
                "kafka.topic_prefix": self.prefix,
                "model.signing_key": self._key,
                "model.artifact_store": str(self.run_dir / "artifacts"),
                "state_dir": str(self.run_dir),
                **(
                    {"routing.feature": "tenant", "routing.models": options.model_names}
                    if options.models > 1
                    else {}
                ),
            },
        )
        self.workers: list[WorkerProcess] = []
        self.phase = "starting"
        self.stop_producing = threading.Event()
        self._started_services: tuple[str, ...] = ()
        self._produced = 0
        self._producer_error: BaseException | None = None
        self._producer_done = threading.Event()
        self._last_scored, self._scored_since = -1, time.monotonic()
        self.result = DemoResult(self.settings, self.run_dir, label_delay=options.label_delay)

    # -- set-up --------------------------------------------------------------------------------------------------
    def start_stack(self) -> None:
        """Bring the local stack up unless it already answers; remember which services we started (only
        those are stopped afterwards: a Kafka the user started stays up even when the demo had to start Redis)."""
        before = stack_status(self.settings, self._stack_dir())
        if not before.up:
            ensure_stack(self.settings, self._stack_dir())
            self._started_services = tuple(s.name for s in (before.kafka, before.redis) if not s.up)

    def _stack_dir(self) -> Path:
        # The stack outlives a demo run: it lives in the user's state dir, not the run's.
        return self.run_dir.parent.parent

    def worker_env(self) -> dict[str, str]:
        """The DRIFTLINE_* environment of this run's workers (and of a console watching it)."""
        s = self.settings
        env = {
            "DRIFTLINE_KAFKA_BOOTSTRAP": s.kafka.bootstrap,
            "DRIFTLINE_REDIS_URL": s.redis.url.get(),
            "DRIFTLINE_TOPIC_PREFIX": s.kafka.topic_prefix,
            "DRIFTLINE_SIGNING_KEY": self._key,
            "DRIFTLINE_MODEL": s.model.name,
            "DRIFTLINE_STATE_DIR": str(self.run_dir),
            "DRIFTLINE__MODEL__ARTIFACT_STORE": str(self.run_dir / "artifacts"),
            "PYTHONUNBUFFERED": "1",
        }
        if self.options.config_file:
            env["DRIFTLINE_CONFIG"] = str(Path(self.options.config_file).resolve())
        if self.options.models > 1:
            env["DRIFTLINE__ROUTING__FEATURE"] = "tenant"
            env["DRIFTLINE__ROUTING__MODELS"] = ",".join(self.options.model_names)
        # An exported DRIFTLINE__SECTION__FIELD spelling of a setting the run sets above (DRIFTLINE__STATE_DIR,
        # DRIFTLINE__KAFKA__TOPIC_PREFIX, ...) gets the run's value: with another one every worker refused to start
        # (two spellings of one setting must agree, session 34), and before that it moved them off the run's state
        # dir or topics silently. The operator's other nested settings (DRIFTLINE__MODEL__TASK, ...) still apply.
        run_values = {
            path: value for var, value in env.items() if (path := ENV_VARS.get(var) or nested_path(var))
        }
        for var in os.environ:
            path = nested_path(var)
            if path is not None and path in run_values:
                env[var] = run_values[path]
        return env

    @property
    def key_file(self) -> Path:
        """The run's signing key (owner-only), kept so its audit trail and releases can be verified afterwards;
        the key was generated for this run and signs nothing else."""
        return self.run_dir / "signing_key"

    def write_key(self) -> None:
        fd = os.open(self.key_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(self._key + "\n")

    def verify_command(self) -> str:
        """The command that checks this run's audit trail (chain file and topic) after the demo."""
        return (
            f"DRIFTLINE_SIGNING_KEY=$(cat {self.key_file}) DRIFTLINE_STATE_DIR={self.run_dir} "
            f"{cli_invocation()} --topic-prefix {self.prefix} audit verify"
        )

    def start_workers(self) -> None:
        """Topics, then one process per role, then wait until each answers and the scorer serves a model."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.write_key()
        ensure_topics(self.settings)
        env = self.worker_env()
        for role in ROLES:
            self.workers.append(WorkerProcess(role, env, self.run_dir / "logs" / f"{role}.log").start())
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        for w in self.workers:
            if not w.wait_metrics(max(1.0, deadline - time.monotonic())):
                raise StackError(f"worker {w.role} did not start; its log says:\n{w.log_tail(20)}")
        view = KafkaView(self.settings)
        while time.monotonic() < deadline:
            sample = self.sample(0.0)
            groups = view.describe(view.group_ids(), with_lag=False)
            if sample.served_version >= 1 and sum(1 for g in groups if g.members) >= len(ROLES):
                return
            dead = [w for w in self.workers if not w.alive()]
            if dead:
                raise StackError(f"worker {dead[0].role} exited; its log says:\n{dead[0].log_tail(20)}")
            time.sleep(0.3)
        raise StackError(
            f"workers not ready within {STARTUP_TIMEOUT_S:.0f}s (no model served or no consumer "
            f"group members); logs in {self.run_dir / 'logs'}"
        )

    # -- producing -----------------------------------------------------------------------------------------------
    def events(self) -> Iterator[Event]:
        o = self.options
        if o.file:
            self.result.source = o.file
            events = open_source(o.file, label_col=o.label_col, id_col=o.id_col, n=o.events)
        else:
            events, self.result.drifts = demo_stream(o.events, seed=o.seed)
            self.result.source = DEMO_STREAM
        return self._spread(events) if o.models > 1 else events

    def _spread(self, events: Iterator[Event]) -> Iterator[Event]:
        """Each event to one of the run's models, round robin, by its `tenant` feature (routing.feature); a file's
        own `tenant` column is replaced, so `--models N` means N models."""
        names = self.options.model_names
        for i, event in enumerate(events):
            event.features["tenant"] = names[i % len(names)]
            yield event

    def _produce(self, events: Iterator[Event]) -> None:
        rate = self.options.rate

        def paced() -> Iterator[Event]:
            # Paced here rather than by publish(rate=...): waiting on the stop event keeps Ctrl-C prompt and
            # the rate exact (sleeping in producer.poll returns early whenever a delivery report arrives).
            start = time.monotonic()
            for i, event in enumerate(events):
                delay = start + i / rate - time.monotonic()
                if self.stop_producing.wait(delay) if delay > 0 else self.stop_producing.is_set():
                    return
                yield event

        def advance(n: int) -> None:
            self._produced += n

        try:
            with EventProducer(self.settings) as producer:
                summary = publish(
                    producer,
                    paced(),
                    labels=True,
                    label_delay=self.options.label_delay,
                    advance=advance,
                )
            self.result.features_sent = summary.features
            self.result.labels_sent = summary.labels
            self.result.produce_s = summary.elapsed_s
        except BaseException as exc:  # reported by the monitoring loop, which owns the workers
            self._producer_error = exc
        finally:
            self._producer_done.set()

    # -- monitoring ----------------------------------------------------------------------------------------------
    def sample(self, t: float) -> Sample:
        fam, answered = scrape(
            [f"http://127.0.0.1:{w.metrics_port}/metrics" for w in self.workers if w.alive()]
        )
        sample = Sample.from_families(fam, t=t, workers_up=answered)
        sample.produced = self._produced
        return sample

    def finished(self, s: Sample) -> bool:
        """Everything sent has been scored, and every label joined and learned (or dead-lettered)."""
        r = self.result
        return (
            self._producer_done.is_set()
            and s.scored >= r.features_sent
            and s.learned + s.deadletters >= r.labels_sent
            and s.lag == 0
        )

    def run(self, on_sample: Callable[[DemoRun, Sample], None]) -> DemoResult:
        """The whole demo; always stops the workers. A stack it started stays up until :meth:`close`."""
        try:
            self.start_stack()
            self.start_workers()
            self._monitor(on_sample)
        finally:
            self.phase = "stopping"
            self.stop_producing.set()
            self.stop_workers()
        if self._producer_error is not None and not isinstance(self._producer_error, KeyboardInterrupt):
            raise self._producer_error
        return self.result

    def _monitor(self, on_sample: Callable[[DemoRun, Sample], None]) -> None:
        view = KafkaView(self.settings)
        thread = threading.Thread(
            target=self._produce, args=(self.events(),), name="demo-producer", daemon=True
        )
        t0 = time.monotonic()
        self.phase = base = "producing"
        thread.start()
        lag, next_lag = 0, 0.0
        drain_deadline: float | None = None
        interrupted = False
        while True:
            try:
                now = time.monotonic()
                if now >= next_lag:
                    groups = view.describe(view.group_ids())
                    lag, next_lag = sum(g.total_lag for g in groups), now + LAG_EVERY_S
                sample = self.sample(now - t0)
                sample.lag = lag
                self.result.samples.append(sample)
                on_sample(self, sample)
                if self._producer_error is not None or self.finished(sample):
                    break
                if self._producer_done.is_set() and drain_deadline is None:
                    self.phase = base = "draining"
                    drain_deadline = now + self.options.drain_timeout_s
                if drain_deadline is not None and now > drain_deadline:
                    self.result.outcome = "timeout"
                    self.result.problem = (
                        f"not everything was processed within {self.options.drain_timeout_s:.0f}s of the last "
                        f"event: {sample.scored:,} of {self.result.features_sent:,} scored, {sample.learned:,} "
                        f"of {self.result.labels_sent:,} labels learned; see {self.run_dir / 'logs'}"
                    )
                    break
                # A stall is shown while it lasts; then the phase it interrupted again.
                self.phase = self._stalled(sample, now) or base
                dead = [w.role for w in self.workers if not w.alive()]
                if dead:
                    raise StackError(f"worker(s) {', '.join(dead)} exited; logs in {self.run_dir / 'logs'}")
                time.sleep(SAMPLE_EVERY_S)
            except KeyboardInterrupt:
                if interrupted:  # a second Ctrl-C: stop now, skip the drain
                    self.result.outcome = "interrupted"
                    break
                interrupted = True
                self.result.outcome = "interrupted"
                self.phase = base = "draining (Ctrl-C again to stop now)"
                self.stop_producing.set()
        thread.join(timeout=30)

    def _stalled(self, s: Sample, now: float) -> str:
        """A warning when events wait but nothing has been scored for a while (a stuck or failing scorer)."""
        if s.scored != self._last_scored or s.produced <= s.scored:
            self._last_scored, self._scored_since = s.scored, now
            return ""
        idle = now - self._scored_since
        if idle < STALL_S:
            return ""
        return f"STALLED: nothing scored for {idle:.0f}s (see {self.run_dir / 'logs' / 'score.log'})"

    # -- tear-down -----------------------------------------------------------------------------------------------
    def stop_workers(self) -> None:
        """SIGTERM every worker at once (they drain and commit), wait for each."""
        for w in self.workers:
            w.signal(signal.SIGTERM)
        for w in self.workers:
            if w.role not in self.result.worker_exit:
                self.result.worker_exit[w.role] = w.stop(timeout=30)

    @property
    def started_stack(self) -> bool:
        """True when this run started (part of) the local stack, and will stop that part in :meth:`close`."""
        return bool(self._started_services)

    def close(self) -> bool:
        """Stop the workers if still running, then the stack services this run started (unless ``keep_stack``).
        Call it after the report has been read from the topics. True when something was stopped.
        """
        self.stop_workers()
        services, self._started_services = self._started_services, ()  # once: close() may run again
        if not services or self.options.keep_stack:
            return False
        stack_down(self.settings, self._stack_dir(), services=services)
        return True

    def __enter__(self) -> DemoRun:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
