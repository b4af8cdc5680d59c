"""``driftline worker [--role score|join|train|all]``: run the stream processors."""

from __future__ import annotations

import argparse
import logging
import sys

from connectors.kafka_client import check_reachable
from connectors.topics import ALL_TOPICS, ensure_topics
from driftline.errors import ConfigError
from streams.cli import settings_from_args

log = logging.getLogger(__name__)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "worker",
        help="run the stream processors (Faust workers)",
        description=(
            "Run driftline's stream processors for one model. Roles: score (features -> predictions, join context to "
            "Redis, hot-swaps released models), join (labels -> training examples), train (the single writer of the "
            "model: learns, watches drift, guards and publishes releases; also applies control commands). "
            "In production run each role in its own process; several score workers share the partitions of "
            "features. 'all' runs the three in one process (development). Do not mix 'all' with separate roles."
        ),
    )
    p.add_argument(
        "--role", choices=("score", "join", "train", "all"), default="all", help="what to run (default all)"
    )
    p.add_argument(
        "--metrics-port", type=int, help="Prometheus port (DRIFTLINE_METRICS_PORT; 0 picks a free one)"
    )
    p.add_argument("--metrics-host", help="address to serve metrics on (default 127.0.0.1)")
    p.add_argument("--loglevel", default="warn", choices=("crit", "error", "warn", "info", "debug"))
    p.set_defaults(func=run)


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
    check_reachable(settings)
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
    faust_worker = faust.Worker(worker.app, loglevel=args.loglevel, quiet=True, redirect_stdouts=False)
    if not faust_worker.stdout.isatty():
        faust_worker.spinner = None  # its cursor codes (ESC[?25l) would end up in a log file
    try:
        faust_worker.execute_from_commandline()
    finally:
        worker.close()
        server.close()
    return 0
