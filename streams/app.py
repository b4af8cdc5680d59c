"""``build_app(settings, roles)``: the Faust app for one worker process, built from the settings.

No module-level app, no import-time side effects. Each role set gets its own consumer group
(``driftline-<prefix><model>-<roles>``), so separate ``score``, ``join`` and ``train`` processes never steal each
other's partitions; several ``score`` processes share the partitions of ``features``.

Faust acknowledges a batch from ``take_events`` when the loop body returns *or raises* (faust-streaming #315, #527),
so every batch here is handled completely inside the body: per-record failures go to ``deadletter``, and a failure of
the batch as a whole (Redis or Kafka unreachable) is retried with backoff until it succeeds, never skipped. Agents run
with concurrency 1 (faust-streaming #606 commits past in-flight messages under concurrency > 1).

A process running only ``score`` reads ``features`` through :class:`~streams.runtime.BatchSource` (confluent-kafka,
whole batches) in a thread of its own instead of a Faust agent: Faust's per-message path cost more CPU than
scoring (BENCHMARKS.md). The contract is the same: outputs flushed before the batch's offsets are stored.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import ssl
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import faust

from connectors.kafka_client import hide_sasl_payloads
from connectors.redis_store import JoinStore
from driftline.errors import ConfigError
from driftline.settings import Settings
from streams.batches import RETRY_MAX_S, BatchLoop, finishing, one_by_one, transient
from streams.join import Joiner, build_join_store, rebuild_join_state
from streams.releases import ReleaseFollower
from streams.runtime import RawRecord, WorkerContext, raw_records
from streams.score import Scorer
from streams.trainers import TrainerGroup

log = logging.getLogger(__name__)

ROLES = ("score", "join", "train")


@dataclass
class Worker:
    """What one worker process runs: the Faust app and the stage objects it drives."""

    app: faust.App
    ctx: WorkerContext
    roles: tuple[str, ...]
    scorer: Scorer | None = None
    joiner: Joiner | None = None
    trainers: TrainerGroup | None = None
    follower: ReleaseFollower | None = None
    store: JoinStore | None = None
    threads: list[threading.Thread] = field(default_factory=list)
    stopping: threading.Event = field(default_factory=threading.Event)

    def close(self) -> None:
        # Each batch thread finishes (and flushes or commits) the batch in hand before it stops.
        self.stopping.set()
        for thread in self.threads:
            if thread.is_alive():
                thread.join(timeout=90)
        if self.follower is not None:
            self.follower.stop()
        self.ctx.out.close(30)


def _credentials(settings: Settings) -> Any:
    """Faust (aiokafka) credentials for ``settings.kafka``: the same TLS and SASL settings as ``client_config``."""
    k = settings.kafka
    if k.security_protocol == "PLAINTEXT":
        return None
    context = None
    if k.security_protocol in ("SSL", "SASL_SSL"):
        # Without a CA file the system trust store is used, as librdkafka does.
        context = ssl.create_default_context(cafile=k.ssl_cafile)
        if not k.ssl_check_hostname:
            context.check_hostname = False
        if k.ssl_certfile:
            context.load_cert_chain(k.ssl_certfile, k.ssl_keyfile, password=k.ssl_key_password.get() or None)
    if k.security_protocol == "SSL":
        return faust.SSLCredentials(context)
    hide_sasl_payloads()  # aiokafka logs SASL PLAIN's password at DEBUG otherwise
    if not k.sasl_mechanism or not k.sasl_username:
        raise ConfigError(
            f"kafka.sasl_mechanism and kafka.sasl_username: required with security_protocol {k.security_protocol}"
        )
    return faust.SASLCredentials(
        username=k.sasl_username,
        password=k.sasl_password.get(),
        ssl_context=context,
        mechanism=k.sasl_mechanism,
    )


def _raw_topic(app: faust.App, name: str) -> Any:
    return app.topic(name, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw")


async def off_loop(fn: Callable[..., Any], *args: Any) -> Any:
    """Run blocking stage work (Redis, decoding, learning, checkpoints) in a thread so the event loop keeps
    serving Faust's consumer: a loop blocked past ``max.poll.interval.ms`` gets the consumer evicted for good
    (faust-streaming #175, #532)."""
    return await asyncio.get_running_loop().run_in_executor(None, functools.partial(fn, *args))


async def handle_batch(
    stage: str,
    ctx: WorkerContext,
    body: Callable[[], Awaitable[None]],
    raws: list[RawRecord] | None = None,
    run: Callable[[list[RawRecord]], None] | None = None,
    stopping: threading.Event | None = None,
) -> None:
    """Run ``body`` until it succeeds: a batch is never acknowledged unhandled.

    Only :func:`~streams.batches.transient` failures are retried. With ``raws`` and ``run`` (the batch's work as a
    blocking call that waits for its outputs), any other failure redoes the batch one record at a time in a thread,
    dead-lettering the records that fail (:func:`~streams.batches.one_by_one`): a poison record never stalls the
    partition. Without them every failure is retried, as before.
    """
    delay = 0.2
    while True:
        try:
            await body()
            return
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if raws is not None and run is not None and not transient(exc):
                log.error(
                    "%s: batch failed (%s: %s), not an infrastructure error: redoing it one record at a time",
                    stage,
                    type(exc).__name__,
                    exc,
                )
                if not await off_loop(one_by_one, stage, ctx, raws, run, stopping or threading.Event()):
                    raise asyncio.CancelledError from None  # stopping: the batch stays unacknowledged
                return
            ctx.metrics.events.labels(stage=stage, outcome="retry").inc()
            log.error("%s: batch failed, retrying in %.1f s: %s", stage, delay, exc)
            await asyncio.sleep(delay)
            delay = min(delay * 2, RETRY_MAX_S)


def build_app(settings: Settings, roles: Sequence[str], ctx: WorkerContext | None = None) -> Worker:
    """Build the Faust app running ``roles`` (any of score, join, train) for ``settings.model.name``."""
    roles = tuple(r for r in ROLES if r in roles)
    ctx = ctx or WorkerContext(settings)
    s = settings
    app_id = f"driftline-{s.kafka.topic_prefix}{s.model.name}-{'-'.join(roles)}"
    brokers = ";".join(f"kafka://{b.strip()}" for b in s.kafka.bootstrap.split(","))
    datadir = ctx.state_dir / "faust" / app_id
    datadir.mkdir(parents=True, exist_ok=True)
    app = faust.App(
        app_id,
        broker=brokers,
        broker_credentials=_credentials(s),
        value_serializer="raw",
        key_serializer="raw",
        web_enabled=False,
        store="memory://",
        autodiscover=False,
        topic_allow_declare=False,  # topics are created by connectors.topics.ensure_topics, with contract policies
        topic_disable_leader=True,  # no on_leader tasks here; its internal topic would only log "not found"
        topic_replication_factor=s.kafka.replication_factor,
        consumer_auto_offset_reset="earliest",
        datadir=str(datadir),
        broker_commit_interval=1.0,
        stream_buffer_maxsize=max(4096, 4 * s.serving.batch_size),
    )
    worker = Worker(app, ctx, roles)
    batch, within = s.serving.batch_size, s.serving.batch_timeout_s
    for stage in roles:
        ctx.metrics.prime_stage(
            stage, [s.topic({"score": "features", "join": "labels", "train": "training"}[stage])]
        )
        ctx.metrics.set_worker_up(stage, True)
    ctx.metrics.prime_model(s.model.name)
    if "score" in roles or "join" in roles:
        worker.store = build_join_store(s)
    if "score" in roles:
        _add_score(worker, batch, within)
    if "join" in roles:
        _add_join(worker, batch, within)
    if "train" in roles:
        _add_train(worker)
    _add_lag_gauge(worker, app_id)
    if not app.agents:  # every stage runs on its own consumer: Faust's consumer is not started at all
        app.producer_only = True
    return worker


def _add_lag_gauge(worker: Worker, group: str) -> None:
    app, metrics = worker.app, worker.ctx.metrics

    @app.timer(interval=5.0)
    async def consumer_lag() -> None:
        # Lag = partition end - next offset to read; partitions this worker no longer owns drop out.
        try:
            consumer = app.consumer
            lags = {}
            for tp in consumer.assignment():
                high = consumer.highwater(tp)
                # faust keeps no public accessor for the read position
                read = consumer._read_offset.get(tp)  # type: ignore[attr-defined]
                if high is not None:
                    lags[(tp.topic, tp.partition)] = max(
                        0, int(high) - int(read if read is not None else 0) - 1
                    )
            metrics.set_consumer_lag(group, lags)
        except Exception as exc:  # metrics never break the worker
            log.debug("consumer lag: %s", exc)


def _add_score(worker: Worker, batch: int, within: float) -> None:
    app, ctx = worker.app, worker.ctx
    assert worker.store is not None
    store = worker.store
    follower = worker.follower = ReleaseFollower(ctx.settings, ctx.metrics, codec=ctx.codec)
    scorer = worker.scorer = Scorer(ctx, follower, store)

    @app.task
    async def start_follower() -> None:
        follower.start()

    if worker.roles == ("score",):
        # A process that only scores (the production layout; several share `features`) reads in batches off
        # Faust's per-message path. The all-in-one worker keeps the agent below: one process, one consumer group.
        _add_score_batches(worker, scorer)
        return

    async def score(stream: Any) -> None:
        # Give the first release a moment to arrive so early events are not answered by "no model".
        loop = asyncio.get_running_loop()
        if not await loop.run_in_executor(None, follower.first_loaded.wait, 30.0):
            log.warning(
                "no release of %s on the models topic yet: predictions are null until one arrives", ctx.model
            )
        async for events in stream.take_events(batch, within=within):
            raws = raw_records(events)

            async def body(raws: list = raws) -> None:
                busy.set()
                try:
                    scored = await off_loop(scorer.process, raws)
                    await ctx.flush()
                    joined = await off_loop(scorer.publish_contexts, scored)
                    await ctx.flush()
                    await off_loop(store.mark_joined, joined)
                finally:
                    busy.clear()

            await handle_batch("score", ctx, body, raws, score_one, worker.stopping)

    app.agent(_raw_topic(app, ctx.settings.topic("features")), name="score")(score)

    busy = threading.Event()  # a batch is being scored in a thread: swap only between batches
    scored_one = finishing(_pipelined(ctx, store, scorer.process, scorer.publish_contexts))

    def score_one(raws: list[RawRecord]) -> None:  # the poison fallback (handle_batch): one record, blocking
        busy.set()
        try:
            scored_one(raws)
        finally:
            busy.clear()

    @app.timer(
        interval=0.1
    )  # cheap (a lock and a compare); bounds how long an idle scorer serves an old model
    async def swap_when_idle() -> None:
        if not busy.is_set():
            scorer.maybe_swap()


def _start_batches(
    worker: Worker,
    stage: str,
    topic: str,
    group: str,
    handle: Callable[[list[RawRecord]], Callable[[], None] | None],
    **options: Any,
) -> None:
    """Run a :class:`BatchLoop` over ``topic`` in the worker's batch thread, started with the app; the consumer
    uses the app's session, heartbeat and poll-interval settings."""
    conf, s = worker.app.conf, worker.ctx.settings
    loop = BatchLoop(
        worker.ctx,
        stage,
        topic,
        group,
        handle,
        s.serving.batch_size,
        s.serving.batch_timeout_s,
        session_timeout_s=conf.broker_session_timeout,
        heartbeat_s=conf.broker_heartbeat_interval,
        max_poll_interval_s=conf.broker_max_poll_interval,
        **options,
    )
    thread = loop.thread(worker.stopping)
    worker.threads.append(thread)

    @worker.app.task
    async def start_batches() -> None:
        thread.start()


def _pipelined(
    ctx: WorkerContext,
    store: JoinStore,
    process: Callable[[list[RawRecord]], Any],
    after_delivery: Callable[[Any], list[str]] | None = None,
) -> Callable[[list[RawRecord]], Callable[[], None]]:
    """A batch handler whose outputs are waited for in its finish step, so the next batch runs while they travel
    (streams/batches.py). ``process`` returns the ids joined, or (with ``after_delivery``) what that step takes
    once the outputs are acknowledged, returning the ids joined (its own outputs are waited for too)."""

    def handle(raws: list[RawRecord]) -> Callable[[], None]:
        with ctx.out.tracking() as deliveries:
            result = process(raws)

        def finish() -> None:
            ctx.out.wait(deliveries, 60)
            joined = result
            if after_delivery is not None:
                with ctx.out.tracking() as more:
                    joined = after_delivery(result)
                ctx.out.wait(more, 60)
            store.mark_joined(joined)  # contexts dropped only once the TrainingExamples are acknowledged

        return finish

    return handle


def _add_score_batches(worker: Worker, scorer: Scorer) -> None:
    app, ctx = worker.app, worker.ctx
    assert worker.store is not None and worker.follower is not None
    store, follower = worker.store, worker.follower
    # Faust's own consumer is not started at all (no agent consumes here), so the app's group id is ours.
    app.producer_only = True

    # Give the first release up to 30 s to arrive so early events are not answered by "no model"; the consumer
    # joins the group meanwhile, its partitions paused.
    ready = threading.Event()
    waiting_since = time.monotonic()

    def gate() -> None:
        if ready.is_set():
            return
        if follower.first_loaded.is_set() or time.monotonic() - waiting_since > 30.0:
            if not follower.first_loaded.is_set():
                log.warning(
                    "no release of %s on the models topic yet: predictions are null until one arrives",
                    ctx.model,
                )
            ready.set()

    _start_batches(
        worker,
        "score",
        ctx.settings.topic("features"),
        app.conf.id,
        _pipelined(ctx, store, scorer.process, scorer.publish_contexts),
        idle=scorer.maybe_swap,  # an idle scorer adopts a new release within `within` seconds
        ready=ready,
        gate=gate,
    )


def _add_join(worker: Worker, batch: int, within: float) -> None:
    app, ctx = worker.app, worker.ctx
    assert worker.store is not None
    store = worker.store
    joiner = worker.joiner = Joiner(ctx, store)
    alive_key = f"{store.namespace}:alive"

    if worker.roles == ("join",):
        # A process that only joins reads `labels` in pipelined batches, like a score-only one; Faust's consumer
        # is not started, so the app's group id (and the offsets it committed) is the batch consumer's.
        app.producer_only = True

        _start_batches(
            worker, "join", ctx.settings.topic("labels"), app.conf.id, _pipelined(ctx, store, joiner.process)
        )
    else:
        join_one = finishing(_pipelined(ctx, store, joiner.process))

        async def join(stream: Any) -> None:
            async for events in stream.take_events(batch, within=within):
                raws = raw_records(events)

                async def body(raws: list = raws) -> None:
                    joined = await off_loop(joiner.process, raws)
                    await ctx.flush()
                    await off_loop(store.mark_joined, joined)

                await handle_batch("join", ctx, body, raws, join_one, worker.stopping)

        app.agent(_raw_topic(app, ctx.settings.topic("labels")), name="join")(join)

    def sweep_once() -> None:
        # Redis lost its data (restart without persistence, flush): rebuild pending joins from `predictions`.
        if not store.client.exists(alive_key):
            rebuild_join_state(ctx.settings, store, ctx.codec)
            store.client.set(alive_key, "1")
        joiner.sweep()

    @app.timer(interval=5.0)
    async def sweep() -> None:
        try:
            await off_loop(sweep_once)
        except Exception as exc:
            log.error("join sweep failed: %s", exc)


def _add_train(worker: Worker) -> None:
    """The trainer group member (streams/trainers.py) in a thread of its own, in every layout: the consumer group
    shares the models out over the train processes, Kafka transactions make learning exactly-once."""
    app, ctx = worker.app, worker.ctx
    timeout = ctx.settings.kafka.trainer_session_timeout_s
    group = worker.trainers = TrainerGroup(
        ctx.settings,
        ctx.metrics,
        ctx.codec,
        session_timeout_s=timeout,
        heartbeat_s=max(0.5, timeout / 10),
        max_poll_interval_s=app.conf.broker_max_poll_interval,
    )

    def run() -> None:
        try:
            group.run(worker.stopping)
        except Exception:
            # A worker without its trainer must not look alive: exit so the supervisor restarts it (the open
            # transaction is aborted by the broker, and nothing is committed past what was learned).
            log.exception("the trainer stopped; the worker exits")
            ctx.metrics.set_worker_up("train", False)
            logging.shutdown()
            os._exit(3)

    thread = threading.Thread(target=run, name="trainer-group", daemon=True)
    worker.threads.append(thread)

    @app.task
    async def start_trainers() -> None:
        thread.start()
