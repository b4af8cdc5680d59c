"""``build_app(settings, roles)``: the Faust app for one worker process, built from the settings.

No module-level app, no import-time side effects. One runtime for every stage and every layout: each stage reads its
topic in whole batches with a confluent-kafka consumer of its own, in a thread of its own (``score`` and ``join``:
:class:`~streams.batches.BatchLoop`, offsets stored only after the batch's outputs are acknowledged, in order;
``train``: :class:`~streams.trainers.TrainerGroup`, Kafka transactions). ``--role all`` runs the same code as one
process per role, with the same consumer groups (:func:`stage_group`), so layouts can be mixed. Faust keeps what it
is good at here: the app and its lifecycle, signals and timers (the join sweep). Why batches and not Faust agents on
the high-rate topics: Faust's per-message consume path cost about 115 us of CPU per event, more than scoring it
(BENCHMARKS.md), and an agent's batch is acknowledged even when its body raises (faust-streaming #315, #527).
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import faust

from connectors.kafka_client import faust_credentials
from connectors.redis_store import JoinStore
from driftline.settings import Settings
from streams.batches import SCORE_GC_YOUNG, BatchLoop
from streams.finisher import PipelinedFinish
from streams.join import Joiner, build_join_store, rebuild_join_state
from streams.releases import ReleaseFollower
from streams.runtime import RawRecord, WorkerContext
from streams.score import Scored, Scorer
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


def stage_group(settings: Settings, stage: str) -> str:
    """The consumer group of a stage: the same whichever process layout runs it (``--role all`` or one role per
    process), so layouts can be mixed and changed without losing offsets."""
    return f"driftline-{settings.kafka.topic_prefix}{settings.model.name}-{stage}"


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
        broker_credentials=faust_credentials(s),
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
        broker_session_timeout=s.kafka.session_timeout_s,
        broker_heartbeat_interval=min(3.0, s.kafka.session_timeout_s / 3),
    )
    worker = Worker(app, ctx, roles)
    for stage in roles:
        ctx.metrics.prime_stage(
            stage, [s.topic({"score": "features", "join": "labels", "train": "training"}[stage])]
        )
        ctx.metrics.set_worker_up(stage, True)
    # Every model known up front (not only model.name), so an increase() alert sees each one's first event.
    for model in dict.fromkeys([s.default_model, s.model.name, *s.routing.models]):
        ctx.metrics.prime_model(model, trainer="train" in roles)
    if "score" in roles or "join" in roles:
        worker.store = build_join_store(s)
    if "score" in roles:
        _add_score(worker)
    if "join" in roles:
        _add_join(worker)
    if "train" in roles:
        _add_train(worker)
    # Every stage reads its topic with a consumer of its own (one runtime for every layout): Faust's consumer is
    # not started at all; the app keeps the timers and the process lifecycle.
    app.producer_only = True
    return worker


def _add_score(worker: Worker) -> None:
    app, ctx = worker.app, worker.ctx
    assert worker.store is not None
    follower = worker.follower = ReleaseFollower(ctx.settings, ctx.metrics, codec=ctx.codec)
    scorer = worker.scorer = Scorer(ctx, follower, worker.store)

    @app.task
    async def start_follower() -> None:
        follower.start()

    _add_score_batches(worker, scorer)


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


def _concat(results: list[list[str]]) -> list[str]:
    return [id_ for ids in results for id_ in ids]


def _pipelined(
    ctx: WorkerContext,
    store: JoinStore,
    process: Callable[[list[RawRecord]], Any],
    after_delivery: Callable[[Any], Any] | None = None,
    combine: Callable[[list[Any]], Any] = _concat,
    last: Callable[[Any], None] | None = None,
) -> Callable[[list[RawRecord]], Callable[[], None]]:
    """A batch handler whose outputs are waited for in its finish step, so the next batch runs while they travel
    (streams/batches.py). ``process`` returns the ids joined, or (with ``after_delivery``) what that step takes
    once the outputs are acknowledged, returning what ``last`` takes (its own outputs are waited for too;
    ``last`` defaults to the store's ``mark_joined`` of the ids joined). The finish step runs off the batch
    thread, merged with the ones queued behind it (``combine`` merges ``process`` results in batch order;
    streams/finisher.py)."""
    finish = store.mark_joined if last is None else last

    def handle(raws: list[RawRecord]) -> Callable[[], None]:
        with ctx.out.tracking() as deliveries:
            result = process(raws)
        # Contexts dropped (mark_joined) only once the TrainingExamples are acknowledged.
        return PipelinedFinish(ctx.out, [deliveries], result, after_delivery, finish, combine, size=len(raws))

    return handle


def score_handler(ctx: WorkerContext, store: JoinStore, scorer: Scorer) -> Callable[[list[RawRecord]], Any]:
    """The score stage's batch handler: score, then (once the Predictions are acknowledged) store the join
    contexts and join the parked labels, then (once those TrainingExamples are acknowledged) mark them joined and
    count the events (``Scorer.finish``)."""
    return _pipelined(ctx, store, scorer.process, scorer.after_delivery, Scored.merged, last=scorer.finish)


def _add_score_batches(worker: Worker, scorer: Scorer) -> None:
    ctx = worker.ctx
    assert worker.store is not None and worker.follower is not None
    store, follower = worker.store, worker.follower

    # Give the first release up to 30 s to arrive so early events are not answered by "no model", nor by an older
    # release of the backlog on `models` (first_loaded waits for the backlog's newest); the consumer joins the
    # group meanwhile, its partitions paused.
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
        stage_group(ctx.settings, "score"),
        score_handler(ctx, store, scorer),
        idle=scorer.idle,  # an idle scorer adopts a new release within `within` seconds
        ready=ready,
        gate=gate,
        gc_young=SCORE_GC_YOUNG,  # in-flight batches no longer walked every 700 allocations (the p99)
    )


def _add_join(worker: Worker) -> None:
    app, ctx = worker.app, worker.ctx
    assert worker.store is not None
    store = worker.store
    joiner = worker.joiner = Joiner(ctx, store)
    alive_key = f"{store.namespace}:alive"
    rebuilding = threading.Lock()
    first: list[bool] = []

    def check_alive() -> None:
        # Redis lost its data (restart without persistence, flush; or a new namespace): rebuild pending joins from
        # the topics. Never two at once.
        with rebuilding:
            if not store.client.exists(alive_key):
                rebuild_join_state(ctx.settings, store, ctx.codec, ctx=ctx)
                store.client.set(alive_key, "1")

    def before_first_batch() -> None:
        # In the batch thread, before the first labels are joined: the rebuild's joins cannot race the joiner's
        # (run from the timer 5 s in, a new namespace's rebuild joined labels the joiner was joining, and the
        # demo's 1,500 labels gave 1,504 TrainingExamples). A loss later is caught by the sweep below.
        if first:
            return
        first.append(True)
        try:
            check_alive()
        except Exception as exc:  # Redis away at start: the sweep tries again
            log.warning("join: cannot check the join state in Redis yet: %s", exc)

    _start_batches(
        worker,
        "join",
        ctx.settings.topic("labels"),
        stage_group(ctx.settings, "join"),
        _pipelined(ctx, store, joiner.process),
        gate=before_first_batch,
    )

    def sweep_once() -> None:
        check_alive()
        joiner.sweep()

    @app.timer(interval=5.0)
    async def sweep() -> None:
        try:
            await asyncio.get_running_loop().run_in_executor(None, sweep_once)  # Redis: off the loop
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
        max_poll_interval_s=max(
            app.conf.broker_max_poll_interval, timeout
        ),  # librdkafka: not below the session
        scores_here="score" in worker.roles,
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
