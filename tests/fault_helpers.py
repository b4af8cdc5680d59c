"""Helpers for the fault, bad-input and integrity suites: a deterministic event stream, a paced publisher that
runs while faults are injected, a private stack on free ports, and the oracle.

The oracle (as in Kafka's system tests) checks, after a run:

- every published event has a prediction (at least once: duplicates allowed, none missing);
- every TrainingExample joins the label sent for that id with a prediction published for that id (never a
  wrong join);
- every label is learned exactly once: the labels the trainer learned in all equal the distinct labelled ids
  (not ``n_learned``, the served lineage's count, which a probation rollback takes back);
- the training topic is single-partition, so every released model equals the model a
  :class:`~learners.lifecycle.ModelLifecycle` trained offline on the same TrainingExample sequence (duplicates by
  id skipped) had at the same ``n_learned`` (so no guard decision may depend on the wall clock: the pipelines run
  with :data:`FAULT_ENV`);
- dead letters plus processed equal the input.

It reads the topics once every label is learned and no transaction is open on the trainer's outputs
(:func:`wait_transactions_ended`); a failure carries :func:`tests.fault_diagnosis.diagnosis`.

Builds on :mod:`tests.pipeline_helpers` (read-only here). Every wait is bounded.
"""

from __future__ import annotations

import io
import json
import os
import random
import signal
import subprocess
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient
from fastavro import parse_schema, schemaless_writer

from connectors.kafka_client import LIBRDKAFKA_LOG, client_config
from connectors.localproc import free_port
from connectors.producer import Deliveries, DeliveryError, EventProducer
from connectors.stack import StackConfig, stack_status, stack_up
from driftline.util import now_ms
from learners.guard import Decision
from learners.lifecycle import Release
from schemas.codec import MAGIC, schema_fingerprint
from streams.processes import WorkerProcess
from streams.train import new_lifecycle
from streams.trainer_transactions import TXN_TIMEOUT_MS
from tests.fault_diagnosis import diagnosis, open_transactions
from tests.pipeline_helpers import Pipeline, distinct_ids, labels_learned

SCHEMAS = Path(__file__).resolve().parent.parent / "schemas"

# Short group timeouts so a worker killed with -9 leaves its consumer group in seconds, not Faust's 60 s
# default (the broker's group.min.session.timeout.ms is 6 s). Faust reads these from the environment.
FAST_GROUP_ENV = {
    "BROKER_SESSION_TIMEOUT": "8",
    "BROKER_HEARTBEAT_INTERVAL": "1",
    "BROKER_REBALANCE_TIMEOUT": "20",
}
# The guard's latency check times predictions on the wall clock (learners/guard.py, ``_latency_ms``): on a loaded
# machine one call preempted or caught in a garbage collection vetoes a release in one process and not in the
# other, while the oracle needs its offline replay to make the trainer's decisions from the same data. In the cold
# start a judgement times the one to three events seen so far, so one slow call is enough, and a veto puts the
# next judgement 25 labels later (helper flake's loops, session 19: the offline replay released at n_learned 1,
# 27, 33, ..., the trainer at 1, 2, 3, ..., 22, 27, ...). The check has its own tests (test_learners_guard.py).
REPLAYABLE_ENV = {"DRIFTLINE__GUARD__MAX_PREDICT_LATENCY_MS": "1000000"}
# The environment of every pipeline the oracle checks.
FAULT_ENV = {**FAST_GROUP_ENV, **REPLAYABLE_ENV}


def seed_for(name: str) -> int:
    """The seed of a randomised fault point: ``FAULT_SEED`` if set (to replay a failure), else a fresh one."""
    value = int(os.environ.get("FAULT_SEED") or random.SystemRandom().randrange(1 << 30))
    print(f"{name}: FAULT_SEED={value}")  # shown by pytest on failure, so a failing run can be replayed
    return value


# --------------------------------------------------------------------------------------------- the event stream


@dataclass(frozen=True)
class Event:
    """One FeatureEvent and its label."""

    id: str
    features: dict[str, Any]
    label: bool


def make_events(n: int, *, seed: int = 7, tag: str = "e", start: int = 0) -> list[Event]:
    """``n`` events with two numeric features and a categorical one; the label is learnable (a noisy line)."""
    rng = random.Random(seed * 1_000_003 + start)
    out = []
    for i in range(start, start + n):
        x1, x2 = rng.random(), rng.random()
        colour = rng.choice(("red", "green", "blue"))
        label = (x1 + x2 + (0.2 if colour == "red" else 0.0) + rng.gauss(0, 0.05)) > 1.0
        out.append(Event(f"{tag}-{i:05d}", {"x1": x1, "x2": x2, "colour": colour}, label))
    return out


def avro_with(schema_path: Path, value: dict[str, Any]) -> bytes:
    """Single-object encoding written by fastavro itself (not our codec), with ``schema_path``'s schema."""
    raw = json.loads(schema_path.read_text())
    buf = io.BytesIO()
    schemaless_writer(buf, parse_schema(raw), value)
    return MAGIC + schema_fingerprint(raw) + buf.getvalue()


def probes(n: int = 60, seed: int = 99) -> list[dict[str, Any]]:
    """Feature vectors to compare two models on."""
    return [e.features for e in make_events(n, seed=seed, tag="probe")]


class Publisher(threading.Thread):
    """Publishes features (and each label ``label_lag`` events later) at ``rate`` events/s in the background.

    ``sent`` counts features handed to the producer; :meth:`finish` joins and re-raises a publishing error.
    Deliveries are confirmed at the end (``flush_timeout`` covers a broker that is down for a while).

    At least once, as a producer that outlives a broker restart must be: records still unacknowledged once the
    broker has answered a fresh client for ``stall_s`` with no acknowledgement since are sent again (same id, event
    time and content) through a new producer, and ``resent`` counts them. Why: the client can stay stuck after a
    broker restart. librdkafka logged ``new leader-1 not found in cache`` for the partitions it held records for
    and delivered none of them in the 166 s from the broker being back to the end of the flush, while the workers'
    own clients went on (helper flaky38, session 38: test_broker_stopped_and_restarted failed 1 of 5 runs at load
    8-14, ``908 record(s) still not acknowledged after 180 s``). A client that recovers does so 1-7 s after the
    broker is back (8 of 8 restarts of a private broker with a producer sending through them, at load ~18).
    """

    def __init__(
        self,
        pipeline: Pipeline,
        events: Sequence[Event],
        *,
        rate: float = 400.0,
        labels: bool = True,
        label_lag: int = 25,
        flush_timeout: float = 180.0,
        stall_s: float = 30.0,
    ) -> None:
        super().__init__(name="fault-publisher", daemon=True)
        self.pipeline = pipeline
        self.events = list(events)
        self.rate = rate
        self.labels = labels
        self.label_lag = label_lag
        self.flush_timeout = flush_timeout
        self.stall_s = stall_s
        self.sent = 0
        self.resent = 0
        self.error: BaseException | None = None
        # (since, events sent then, rate): the pace from then on; speed_up() replaces it while events stream.
        self._pace = (time.monotonic(), 0, rate)

    def speed_up(self, rate: float) -> None:
        """Send the events still to come at ``rate`` events/s from now on: a test whose faults are over need not
        wait out a stream paced to outlast them."""
        self._pace = (time.monotonic(), self.sent, rate)

    def new_producer(self) -> EventProducer:
        return EventProducer(self.pipeline.settings())

    def broker_answers(self) -> bool:
        """Whether a fresh client gets the cluster's metadata from the broker now."""
        admin = AdminClient(client_config(self.pipeline.settings(), logger=LIBRDKAFKA_LOG))
        try:
            return bool(admin.list_topics(timeout=5).brokers)
        except KafkaException:
            return False

    def run(self) -> None:
        try:
            self._publish()
        except BaseException as exc:  # re-raised in the test's thread by finish()
            self.error = exc

    def _publish(self) -> None:
        producer = self.new_producer()
        records: list[tuple[str, Event, int, Deliveries]] = []

        def send(p: EventProducer, kind: str, event: Event, ts: int) -> Deliveries:
            with p.tracking() as deliveries:
                if kind == "feature":
                    p.send_feature(event.id, event.features, ts=ts)
                else:
                    p.send_label(event.id, event.label, ts=ts)
            return deliveries

        self._pace = (time.monotonic(), 0, self.rate)
        for i, event in enumerate(self.events):
            ts = now_ms()
            records.append(("feature", event, ts, send(producer, "feature", event, ts)))
            if self.labels and i >= self.label_lag:
                back = self.events[i - self.label_lag]
                records.append(("label", back, ts, send(producer, "label", back, ts)))
            self.sent = i + 1
            since, sent_then, rate = self._pace
            ahead = since + (i + 1 - sent_then) / rate - time.monotonic()
            if ahead > 0:
                time.sleep(ahead)
        if self.labels:
            for back in self.events[max(0, len(self.events) - self.label_lag) :]:
                ts = now_ms()
                records.append(("label", back, ts, send(producer, "label", back, ts)))

        producers = [producer]
        deadline = time.monotonic() + self.flush_timeout
        last_progress, acknowledged = time.monotonic(), -1
        # Since when the broker has answered a fresh client with no acknowledgement since (None: not yet).
        answering: float | None = None
        asked = 0.0
        while True:
            for p in producers:
                p.poll(0.1)
            pending = [r for r in records if not r[3].done]
            failed = [r for r in records if r[3].done and r[3].failed]
            if failed:
                raise DeliveryError(
                    f"{len(failed)} record(s) were not delivered; first: {failed[0][3].first_error}"
                )
            if not pending:
                break
            now = time.monotonic()
            if len(records) - len(pending) != acknowledged:
                acknowledged, last_progress, answering = len(records) - len(pending), now, None
            elif answering is None and now - last_progress >= min(2.0, self.stall_s) and now - asked >= 1.0:
                asked = now
                if self.broker_answers():
                    answering = now
            elif answering is not None and now - answering >= self.stall_s:
                # The broker has answered for stall_s and the client delivered nothing since: stop it sending
                # what it still holds, and send every unacknowledged record again through a new producer.
                with suppress(KafkaException, RuntimeError):
                    producers[-1]._producer.purge(in_queue=True, in_flight=False)
                fresh = self.new_producer()
                producers.append(fresh)
                resend = {id(r[3]) for r in pending}
                records = [
                    (kind, event, ts, send(fresh, kind, event, ts))
                    if id(d) in resend
                    else (kind, event, ts, d)
                    for kind, event, ts, d in records
                ]
                self.resent += len(pending)
                print(
                    f"publisher: {len(pending)} record(s) unacknowledged {now - last_progress:.0f} s after the "
                    f"last acknowledgement, {now - answering:.0f} s after the broker answered again: sent again "
                    "through a new producer"
                )
                last_progress, answering = now, None
            if now > deadline:
                raise DeliveryError(
                    f"{len(pending)} record(s) still not acknowledged after {self.flush_timeout:g} s "
                    f"({self.resent} sent again through a new producer)"
                )
        for stuck in producers[:-1]:  # what a replaced producer still holds is not waited for
            with suppress(KafkaException, RuntimeError):
                stuck._producer.purge(in_queue=True, in_flight=True)
                stuck._producer.flush(1)

    def wait_sent(self, n: int, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while self.sent < n and self.is_alive() and time.monotonic() < deadline:
            time.sleep(0.02)
        if self.error is not None:
            raise AssertionError(f"publisher failed: {self.error!r}") from self.error
        assert self.sent >= n, f"publisher sent only {self.sent} of {n} events in {timeout:.0f} s"

    def finish(self, timeout: float = 240.0) -> None:
        self.join(timeout)
        assert not self.is_alive(), f"publisher still running after {timeout:.0f} s ({self.sent} sent)"
        if self.error is not None:
            raise AssertionError(f"publisher failed: {self.error!r}") from self.error


def publish(pipeline: Pipeline, events: Sequence[Event], *, labels: bool = True, label_lag: int = 25) -> None:
    """Publish ``events`` as fast as possible (same order as :class:`Publisher`)."""
    publisher = Publisher(pipeline, events, rate=1e9, labels=labels, label_lag=label_lag)
    publisher.run()
    if publisher.error is not None:
        raise AssertionError(f"publisher failed: {publisher.error!r}") from publisher.error


def kill9(pipeline: Pipeline, worker: WorkerProcess) -> None:
    """SIGKILL ``worker`` (by pid) and forget it, so the pipeline's waits do not take it for a crash."""
    worker.kill()
    worker.stop()  # closes its log file; the process is already gone
    pipeline.workers.remove(worker)


@contextmanager
def running_all(pipeline: Pipeline, grace: float = 30.0) -> Iterator[Pipeline]:
    """Like ``pipeline_helpers.running``, but SIGTERMs every worker at once and then waits (faster teardown)."""
    try:
        yield pipeline
    finally:
        for worker in pipeline.workers:
            worker.signal(signal.SIGTERM)
        deadline = time.monotonic() + grace
        for worker in pipeline.workers:
            if worker.proc is not None:
                with suppress(subprocess.TimeoutExpired):
                    worker.proc.wait(max(0.1, deadline - time.monotonic()))
        pipeline.stop()  # SIGKILLs what is left, closes the logs


def retire(pipeline: Pipeline, worker: WorkerProcess, timeout: float = 60.0) -> int | None:
    """SIGTERM ``worker``, wait for its exit code and forget it."""
    code = worker.stop(timeout=timeout)
    pipeline.workers.remove(worker)
    return code


# -------------------------------------------------------------------------------------------------- the oracle


@dataclass
class Outcome:
    """What the topics hold after a run (read once, checked by :func:`check_run`)."""

    predictions: list[dict[str, Any]]
    training: list[dict[str, Any]]
    deadletters: list[dict[str, Any]]
    releases: list[dict[str, Any]]
    trainer: dict[str, Any] = field(default_factory=dict)

    @property
    def duplicate_predictions(self) -> int:
        return len(self.predictions) - len(distinct_ids(self.predictions))


def wait_complete(
    pipeline: Pipeline, events: Sequence[Event], labelled: Iterable[str], timeout: float = 120.0
) -> Outcome:
    """Wait until every event has a prediction and every labelled id is learned; returns the topics' content."""
    want_ids = {e.id for e in events}
    want_learned = len(set(labelled))
    pipeline.wait_until(
        f"{len(want_ids)} distinct predicted ids",
        lambda: want_ids <= distinct_ids(pipeline.values("predictions")),
        timeout,
        interval=1.0,
    )
    pipeline.wait_learned(want_learned, timeout)
    time.sleep(1.0)  # let a duplicate still in flight land before the topics are read for the checks
    wait_transactions_ended(pipeline)
    return Outcome(
        pipeline.values("predictions"),
        training_in_order(pipeline),
        pipeline.values("deadletter"),
        pipeline.releases(),
        pipeline.trainer(),
    )


def wait_transactions_ended(pipeline: Pipeline, timeout: float = 3 * TXN_TIMEOUT_MS / 1000) -> float:
    """Wait until no transaction is open on the trainer's outputs (``models``, ``deadletter``, ``changelog``);
    returns the seconds waited.

    A trainer killed -9 inside a transaction that had already written a release, but not yet its changelog record,
    leaves that transaction open until the broker aborts it (``transaction.timeout.ms``, 20 s): read_committed
    readers stop at its first record, so the releases of the next trainer are not visible yet although it has
    learned every label (its restore did not wait: the changelog held nothing of the open transaction). That is
    the documented cost of a killed trainer (README, *Exactly-once learning*); the oracle reads the topics once
    it is paid, else it finds releases missing (CI, session 18: every release after n_learned 151)."""
    settings = pipeline.settings()
    first_seen: dict[str, tuple[int, int]] = {}
    t0 = time.monotonic()

    def ended() -> bool:
        now_open = open_transactions(settings)
        first_seen.update({} if first_seen else now_open)
        return not now_open

    pipeline.wait_until("the open transactions on the trainer's outputs to end", ended, timeout, interval=1.0)
    waited = time.monotonic() - t0
    if first_seen:  # shown with a failure's output
        print(f"open transactions (LSO, high watermark) {first_seen} ended after {waited:.1f} s")
    return waited


def training_in_order(pipeline: Pipeline) -> list[dict[str, Any]]:
    """The ``training`` topic in offset order: the order the trainer learns in. (``Pipeline.values`` merges by
    timestamp, and two processes - joiner and scorer - write this topic, so timestamps are not offset order.)"""
    records = pipeline.read("training")
    bad = [r for r in records if not r.ok]
    assert not bad, f"training: {len(bad)} undecodable record(s), first: {bad[0].error}"
    records.sort(key=lambda r: (r.partition, r.offset))
    return [r.value for r in records if r.value is not None]


def check_predictions(out: Outcome, events: Sequence[Event]) -> None:
    """Every event predicted at least once, with the features it was sent with; nothing else predicted."""
    by_id = {e.id: e for e in events}
    assert distinct_ids(out.predictions) == set(by_id), "predicted ids differ from published ids"
    for p in out.predictions:
        assert p["features"] == by_id[p["id"]].features, f"prediction for {p['id']} carries other features"


def check_joins(out: Outcome, events: Sequence[Event]) -> None:
    """Every TrainingExample = the label sent for its id + a prediction published for that id (never a wrong join)."""
    by_id = {e.id: e for e in events}
    served: dict[str, list[tuple[Any, int]]] = {}
    for p in out.predictions:
        served.setdefault(p["id"], []).append((p["prediction"], int(p["version"])))
    for ex in out.training:
        id_ = ex["id"]
        assert id_ in by_id, f"training example for unknown id {id_}"
        assert ex["label"] == by_id[id_].label, (
            f"{id_}: joined with label {ex['label']}, sent {by_id[id_].label}"
        )
        assert ex["features"] == by_id[id_].features, f"{id_}: joined with other features"
        assert (ex["prediction"], int(ex["version"])) in served[id_], (
            f"{id_}: joined prediction {ex['prediction']} v{ex['version']} was never published for it "
            f"(published: {served[id_]})"
        )


def check_learned_once(out: Outcome, labelled: Iterable[str]) -> None:
    """Every labelled id reached ``training`` and the trainer counts each exactly once."""
    want = set(labelled)
    joined = distinct_ids(out.training)
    assert joined == want, f"joined ids differ: {len(want - joined)} missing, {len(joined - want)} extra"
    assert labels_learned(out.trainer) == len(want), (
        f"trainer learned {labels_learned(out.trainer)} labels (n_learned {out.trainer['n_learned']}), "
        f"distinct labelled ids = {len(want)}"
    )


def offline_models(
    pipeline: Pipeline,
    training: Sequence[Mapping[str, Any]],
    refused: list[tuple[int, str, dict[str, Any]]] | None = None,
) -> tuple[int, dict[int, list[Any]]]:
    """Replay ``training`` (topic order, duplicates by id skipped) through a fresh lifecycle as the trainer
    does; returns its ``n_learned`` and ``{n_learned at release: predictions on the probes}``. ``refused``
    receives ``(n_learned, outcome, failed checks)`` of each guard decision that did not promote."""
    settings = pipeline.settings()
    lifecycle = new_lifecycle(settings)
    lifecycle.initial_release()
    xs = probes()
    released: dict[int, list[Any]] = {}
    seen: set[str] = set()
    index = 0
    for ex in training:
        if ex["model"] != settings.model.name or ex["id"] in seen:
            continue
        seen.add(ex["id"])
        events = lifecycle.learn_one(
            ex["features"],
            ex["label"],
            served_prediction=ex.get("prediction"),
            served_version=ex.get("version"),
            index=index,
            ts=ex.get("event_ts"),
        )
        index += 1
        for event in events:
            if isinstance(event, Release):
                released[int(event.metrics["n_learned"])] = _predict_all(event.model, xs)
            elif isinstance(event, Decision) and event.outcome != "promote" and refused is not None:
                failed = {k: v for k, v in event.checks.items() if v is not True}
                refused.append((lifecycle.n_learned, event.outcome, failed))
    return lifecycle.n_learned, released


def _predict_all(model: Any, xs: Sequence[dict[str, Any]]) -> list[Any]:
    out = []
    for x in xs:
        pred, proba = model.predict_with_proba(x)
        out.append((pred, {str(k): round(float(v), 9) for k, v in proba.items()}))
    return out


def check_models_equal_offline(pipeline: Pipeline, out: Outcome) -> int:
    """Every non-initial release equals the offline model at the same ``n_learned``; returns how many compared."""
    budget = pipeline.settings().guard.max_predict_latency_ms
    assert budget >= float(REPLAYABLE_ENV["DRIFTLINE__GUARD__MAX_PREDICT_LATENCY_MS"]), (
        f"the guard's latency budget is {budget} ms: run the pipeline with FAULT_ENV (see REPLAYABLE_ENV)"
    )
    refused: list[tuple[int, str, dict[str, Any]]] = []
    n_offline, offline = offline_models(pipeline, out.training, refused)
    assert n_offline == int(out.trainer["n_learned"]), (
        f"offline replay learned {n_offline}, trainer reports {out.trainer['n_learned']}"
    )
    # Where the offline guard did not promote (n_learned, outcome, failed checks): a release point missing on
    # one side is usually a decision that went the other way there.
    why = f"; offline guard refusals: {refused[:8]}" if refused else ""
    xs = probes()
    compared = 0
    online_points = set()
    for release in out.releases:
        if release["reason"] == "initial":
            continue
        n = int(release["metrics"]["n_learned"])
        online_points.add(n)
        assert n in offline, (
            f"release v{release['version']} has n_learned={n}; offline released at {sorted(offline)}{why}"
        )
        online = _predict_all(pipeline.load_model(release), xs)
        differ = [i for i, (a, b) in enumerate(zip(online, offline[n], strict=True)) if a != b]
        assert not differ, (
            f"release v{release['version']} (n_learned={n}) predicts differently from the offline model on "
            f"{len(differ)} of {len(xs)} probes, e.g. {online[differ[0]]} vs {offline[n][differ[0]]}; releases: "
            f"{[(r['version'], r['reason'], r['metrics'].get('n_learned')) for r in out.releases]}"
        )
        compared += 1
    assert online_points == set(offline), (
        f"online released at {sorted(online_points)}, offline at {sorted(offline)}; releases: "
        f"{[(r['version'], r['reason'], r['metrics'].get('n_learned')) for r in out.releases]}{why}"
    )
    return compared


def check_no_deadletters(out: Outcome) -> None:
    assert not out.deadletters, f"{len(out.deadletters)} dead letter(s), first: {out.deadletters[0]['error']}"


def check_run(pipeline: Pipeline, out: Outcome, events: Sequence[Event], labelled: Iterable[str]) -> int:
    """The whole oracle for a clean input stream; returns the number of releases compared with offline."""
    labelled = set(labelled)
    try:
        check_no_deadletters(out)  # dead letters (0) + processed (every id) == input
        check_predictions(out, events)
        check_joins(out, events)
        check_learned_once(out, labelled)
        return check_models_equal_offline(pipeline, out)
    except AssertionError as exc:  # the evidence, while the run's topics and logs still exist
        raise AssertionError(f"{exc}\n{diagnosis(pipeline)}") from exc


# --------------------------------------------------------------------------------------------- a private stack


@dataclass
class PrivateStack:
    """Kafka and Redis on free ports in a tmp state dir, for faults that hit the servers themselves.

    Processes are signalled by the pids of the stack's own pid files only.
    """

    cfg: StackConfig

    @classmethod
    def create(cls, state_dir: Path) -> PrivateStack:
        from driftline.settings import load_settings

        return cls(
            StackConfig.from_settings(
                load_settings(environ={}),
                state_dir,
                kafka_port=free_port(),
                controller_port=free_port(),
                redis_port=free_port(),
            )
        )

    @property
    def bootstrap(self) -> str:
        return self.cfg.kafka_address

    @property
    def redis_url(self) -> str:
        return f"redis://{self.cfg.redis_address}/0"

    def up(self, timeout: float = 180.0) -> None:
        status = stack_up(self.cfg, timeout_s=timeout)
        assert (status.kafka.state, status.redis.state) == ("up", "up"), status.to_dict()

    def pipeline(self, prefix: str, state_dir: Path, **extra_env: str) -> Pipeline:
        env = {"DRIFTLINE_KAFKA_BOOTSTRAP": self.bootstrap, **FAULT_ENV, **extra_env}
        return Pipeline(prefix, state_dir, self.redis_url, extra_env=env)

    def kafka_pid(self) -> int:
        pid = stack_status(self.cfg).kafka.pid
        assert pid, "private Kafka is not running"
        return pid

    def redis_pid(self) -> int:
        pid = stack_status(self.cfg).redis.pid
        assert pid, "private Redis is not running"
        return pid

    def redis(self) -> redis.Redis:
        return redis.Redis(host=self.cfg.host, port=self.cfg.redis_port, socket_timeout=10)

    def stop_kafka(self, timeout: float = 60.0) -> None:
        """SIGTERM the broker (a controlled shutdown) and wait until the process is gone."""
        _terminate(self.kafka_pid(), timeout)

    def stop_redis(self, timeout: float = 30.0) -> None:
        _terminate(self.redis_pid(), timeout)

    def pause_kafka(self) -> int:
        pid = self.kafka_pid()
        os.kill(pid, signal.SIGSTOP)
        return pid

    @staticmethod
    def resume(pid: int) -> None:
        os.kill(pid, signal.SIGCONT)


def _terminate(pid: int, timeout: float) -> None:
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not Path(f"/proc/{pid}").exists() or _zombie(pid):
            return
        time.sleep(0.2)
    os.kill(pid, signal.SIGKILL)


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1].startswith("Z")
    except (OSError, IndexError):
        return True
