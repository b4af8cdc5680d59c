"""``driftline worker [--role score|join|train|all]``: run the stream processors."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from typing import Any

from connectors.kafka_client import check_reachable
from connectors.redis_store import check_redis_reachable
from connectors.topics import ALL_TOPICS, ensure_topics
from driftline.errors import ConfigError, StackError
from driftline.settings import MaskSecrets
from streams.cli import LOG_FORMAT, log_level, settings_from_args

log = logging.getLogger(__name__)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "worker",
        help="run the stream processors (Faust workers)",
        description=(
            "Run driftline's stream processors for every model of the deployment. Roles: score (features -> "
            "predictions by each event's model, join context to Redis, hot-swaps released models), join (labels -> "
            "training examples), train (a member of the trainer group: the single writer of the models of its "
            "training partitions: learns, watches drift, guards and publishes releases; also applies their control "
            "commands). In production run each role in its own process; several score workers share the "
            "partitions of features, and several train workers share the models (each model has one trainer at a "
            "time; `driftline models list` shows which). 'all' runs the three in one process (development). Do "
            "not mix 'all' with separate roles."
        ),
    )
    p.add_argument(
        "--role", choices=("score", "join", "train", "all"), default="all", help="what to run (default all)"
    )
    p.add_argument(
        "--metrics-port", type=int, help="Prometheus port (DRIFTLINE_METRICS_PORT; 0 picks a free one)"
    )
    p.add_argument("--metrics-host", help="address to serve metrics on (default 127.0.0.1)")
    p.add_argument(
        "--loglevel",
        choices=tuple(LOGLEVELS),
        help="log level of the worker and Faust (default: warn; info with -v, debug with -vv)",
    )
    p.set_defaults(func=run)


LOGLEVELS = {
    "crit": logging.CRITICAL,
    "error": logging.ERROR,
    "warn": logging.WARNING,
    "info": logging.INFO,
    "debug": logging.DEBUG,
}


def logging_config(level: int) -> dict[str, Any]:
    """Faust's logging set-up for a worker: the CLI's format on stderr, with the filter that masks secrets.

    Faust (``mode``) replaces the root logger's handlers when the worker starts; without this its own handler (to
    stdout, no filter) would take over and a password in a URL could reach the log.
    """
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"mask_secrets": {"()": MaskSecrets}},
        "formatters": {"driftline": {"format": LOG_FORMAT}},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stderr",
                "formatter": "driftline",
                "filters": ["mask_secrets"],
            }
        },
        "root": {"level": level, "handlers": ["stderr"]},
    }


def worker_log_level(args: argparse.Namespace) -> int:
    """``--loglevel`` if given, else what ``-v`` asks for (the same as every other command)."""
    return LOGLEVELS[args.loglevel] if args.loglevel else log_level(args.verbose)


# A broker that stops answering between the start-up check and Faust's own bootstrap (restarted while the worker
# starts) made Faust's producer raise aiokafka's KafkaConnectionError: the worker exited 1 with a traceback and stayed
# down for good (helper chaos32, seed 6). It now waits for the broker and starts again in the same process (exec:
# the same pid for whatever supervises it), at most START_ATTEMPTS times in a row.
START_ATTEMPTS = 5
START_WAIT_S = 120.0
START_POLL_S = 1.0  # between two checks of the broker while waiting for it
RAN_WELL_S = 300.0  # a worker that ran this long before the loss starts counting its attempts afresh
ATTEMPT_ENV = "DRIFTLINE_WORKER_START_ATTEMPT"


def broker_lost(exc: BaseException) -> BaseException | None:
    """aiokafka's error when ``exc`` (Faust's exit) was caused by not reaching the broker, else None."""
    from aiokafka.errors import KafkaConnectionError

    seen: set[int] = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:
        if isinstance(cause, KafkaConnectionError):
            return cause
        seen.add(id(cause))
        cause = cause.__cause__ or cause.__context__
    return None


def start_again(settings: Any, exc: BaseException, ran_s: float) -> None:
    """Wait for the broker, then replace this process with a fresh worker; returns only when out of attempts."""
    attempt = 1 if ran_s >= RAN_WELL_S else int(os.environ.get(ATTEMPT_ENV, "1"))
    if attempt >= START_ATTEMPTS:
        log.error(
            "Kafka at %s stopped answering while the worker ran (%s), %d times in a row: giving up; check the "
            "broker, then start the worker again",
            settings.kafka.bootstrap,
            exc,
            attempt,
        )
        return
    log.warning(
        "Kafka at %s stopped answering while the worker ran (%s): waiting for it, then starting again "
        "(attempt %d of %d)",
        settings.kafka.bootstrap,
        exc,
        attempt + 1,
        START_ATTEMPTS,
    )
    deadline = time.monotonic() + START_WAIT_S
    while True:
        try:
            check_reachable(settings)
            break
        except StackError:
            if time.monotonic() > deadline:
                log.error(
                    "Kafka at %s did not answer again within %.0f s", settings.kafka.bootstrap, START_WAIT_S
                )
                return
            # check_reachable raises at once for refused credentials or a failed TLS handshake: without a pause
            # this loop built an admin client as fast as it could for START_WAIT_S (review32).
            time.sleep(START_POLL_S)
    os.environ[ATTEMPT_ENV] = str(attempt + 1)
    sys.stderr.flush()
    os.execv(sys.executable, [sys.executable, *sys.orig_argv[1:]])


def run(args: argparse.Namespace) -> int:
    settings = settings_from_args(
        args, {"metrics.port": args.metrics_port, "metrics.host": args.metrics_host}
    )
    if not settings.model.signing_key:
        raise ConfigError(
            "model.signing_key: no signing key configured; set DRIFTLINE_SIGNING_KEY (or model.signing_key in the "
            "YAML file): releases are signed and verified with it"
        )
    roles = ("score", "join", "train") if args.role == "all" else (args.role,)
    if "train" in roles:
        from streams.commands.config import check_runtime

        check_runtime(settings)  # what `config validate` refuses: the learners, detectors, the inline limit
    check_reachable(settings)
    # Every role needs Redis (join contexts, the trainer's status and control answers): fail at start naming the
    # address, as for the broker, rather than run on logging a Redis error per batch.
    check_redis_reachable(settings)
    ensure_topics(settings, ALL_TOPICS)

    try:
        import uvloop

        uvloop.install()
    except ImportError:  # optional speed-up
        pass
    import faust

    from streams.app import build_app
    from streams.metrics import serve_metrics

    worker = build_app(settings, roles)
    server = serve_metrics(worker.ctx.metrics, settings.metrics.host, settings.metrics.port)
    print(
        f"driftline worker ({'+'.join(roles)}), default model {settings.default_model!r}: "
        f"kafka {settings.kafka.bootstrap}, metrics {server.url}",
        file=sys.stderr,
        flush=True,
    )
    level = worker_log_level(args)
    faust_worker = faust.Worker(
        worker.app,
        loglevel=level,
        logging_config=logging_config(level),
        quiet=True,
        redirect_stdouts=False,
    )
    if not faust_worker.stdout.isatty():
        faust_worker.spinner = None  # its cursor codes (ESC[?25l) would end up in a log file
    started = time.monotonic()
    try:
        faust_worker.execute_from_commandline()
    except SystemExit as exc:
        cause = broker_lost(exc) if exc.code else None
        if cause is None:
            raise
        lost = cause
    finally:
        worker.close()
        server.close()
    start_again(settings, lost, time.monotonic() - started)
    raise SystemExit(1)
