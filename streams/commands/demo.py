"""``driftline demo``: the main job. Stack, workers, a drifting stream with delayed labels, live view, report."""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from driftline.errors import ConfigError, DriftlineError
from driftline.util import MAX_EVENTS
from streams.cli import (
    port_or_any,
    positive_rate,
    positive_seconds,
    report_dir,
    settings_from_args,
    stop_on_sigterm,
    whole_number,
)

if TYPE_CHECKING:
    from driftline.settings import Settings
    from streams.demo.runner import DemoRun

DEFAULT_EVENTS = 12_000
DEFAULT_RATE = 100.0  # the default run takes about two minutes


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo",
        help="run the whole pipeline on a drifting stream, watch it live, write a report",
        description=(
            "Bring up the local stack if needed, start score, join and train workers (separate processes) on "
            "fresh run-scoped topics, stream a drifting data set with delayed labels through them, show a live "
            "view, stop when everything is processed (or on Ctrl-C, without losing anything) and write "
            "DIR/report.html with PNG plots."
        ),
    )
    p.add_argument("--events", type=int, default=DEFAULT_EVENTS, metavar="N",
                   help=f"events to stream (default {DEFAULT_EVENTS:,}: about two minutes)")  # fmt: skip
    p.add_argument(
        "--file",
        metavar="F",
        help="a CSV or JSON-lines file (.csv/.jsonl, or named otherwise: JSON lines when it starts with '{') "
        "instead of the built-in synthetic stream",
    )
    p.add_argument("--label-col", metavar="C", help="label column of --file")
    p.add_argument("--id-col", metavar="C",
                   help="id column of --file (default: a column or field named id, else the row number)")  # fmt: skip
    p.add_argument("--rate", type=positive_rate, default=DEFAULT_RATE, metavar="N",
                   help=f"events per second (default {DEFAULT_RATE:g})")  # fmt: skip
    p.add_argument("--label-delay", type=whole_number, default=300, metavar="N",
                   help="each label is published N events after its event (default 300)")  # fmt: skip
    p.add_argument("--seed", type=int, default=7, help="seed of the built-in stream (default 7)")
    p.add_argument("--report", default="report", metavar="DIR", help="report directory (default ./report)")
    p.add_argument("--no-live", action="store_true", help="print a progress line every few seconds instead")
    p.add_argument(
        "--keep-stack", action="store_true", help="leave the local stack running if the demo started it"
    )
    p.add_argument("--timeout", type=positive_seconds, default=90.0, metavar="S",
                   help="seconds to wait for the workers to finish after producing (default 90)")  # fmt: skip
    p.add_argument(
        "--console-port", type=port_or_any, default=8765, metavar="PORT",
        help="port of the web console started next to the run (default 8765, or a free one if taken; 0: any free one)",
    )  # fmt: skip
    p.add_argument(
        "--models",
        type=int,
        default=1,
        metavar="N",
        help="spread the stream over N models (a `tenant` feature routes each event; each model learns, is "
        "guarded and released on its own; the summary lists them)",
    )
    p.add_argument("--no-console", action="store_true", help="do not start the web console")
    p.add_argument("--json", action="store_true", help="print the summary as one JSON object on stdout")
    p.set_defaults(func=run)


@contextmanager
def _console(demo: DemoRun, port: int) -> Iterator[None]:
    """The web console on the run's deployment while it runs; a console that cannot start never stops the demo."""
    from streams.console.launch import start_console

    try:
        console = start_console(demo.worker_env(), demo.run_dir / "logs" / "console.log", port=port)
    except DriftlineError as exc:
        print(f"driftline demo: no console ({exc})", file=sys.stderr, flush=True)
        yield
        return
    print(
        f"driftline demo: console {console.url} (action token {console.token}); it stops with the demo",
        file=sys.stderr,
        flush=True,
    )
    try:
        yield
    finally:
        console.stop()


def _check_file(args: argparse.Namespace, settings: Settings) -> int:
    """Read ``--file`` (up to ``--events`` rows) before anything starts: no rows, a missing label column, or a
    continuous target for a classifier (every example would be dead-lettered), is refused here. Returns how many
    events the demo will stream: the file's rows, at most ``--events``."""
    from connectors.sources import open_source
    from learners.replay import INFER_ROWS
    from learners.specs import MAX_FRACTIONAL_CLASSES

    source = open_source(args.file, label_col=args.label_col, id_col=args.id_col, n=args.events)
    fractional: set[float] = set()
    rows = 0
    for event in source:
        rows += 1
        y = event.label
        # The head, as `driftline replay` tells a number to predict from class labels.
        if rows <= INFER_ROWS and type(y) is float and math.isfinite(y) and not y.is_integer():
            fractional.add(y)
    if not rows:
        raise ConfigError(f"--file: {args.file} has no rows to stream (an empty file, or a header alone)")
    if settings.model.task == "classification" and len(fractional) > MAX_FRACTIONAL_CLASSES:
        raise ConfigError(
            f"--file: the labels in {args.label_col!r} are continuous numbers ({len(fractional)} distinct "
            f"non-integer values in the first rows), which a classifier cannot learn: set model.task: regression "
            "(DRIFTLINE__MODEL__TASK=regression; the report then shows the MAE), or replay it "
            f"(`driftline replay --file {args.file} --label-col {args.label_col}` infers regression)"
        )
    return rows


def _behind(summary: dict[str, Any], args: argparse.Namespace) -> str:
    """How stale the served model was (the guard tax is read next to it: a loaded machine's trainer falls behind)."""
    p50 = summary.get("served_behind_p50_events")
    if p50 is None or args.models > 1:
        return ""
    return f"; the served model was {p50:,.0f} events behind the stream (p50; labels {args.label_delay} late)"


def _quality(summary: dict[str, Any]) -> str:
    if "mae" in summary:  # a regression run (model.task)
        mae = summary["mae"]
        return f"MAE {'-' if mae is None else f'{mae:.4g}'}"
    acc = summary["accuracy"]
    return f"accuracy {'-' if acc is None else f'{acc:.3f}'}"


def run(args: argparse.Namespace) -> int:
    if not 1 <= args.events <= MAX_EVENTS:
        raise ConfigError(f"--events: must be 1 to {MAX_EVENTS:,}, got {args.events}")
    if not 1 <= args.models <= 1000:
        raise ConfigError(f"--models: must be between 1 and 1000, got {args.models}")
    if args.file and not args.label_col:
        raise ConfigError("--label-col: required with --file (the demo learns from the labels)")
    from streams.demo.baseline import demo_baseline
    from streams.demo.collect import collect
    from streams.demo.live import LiveView, ProgressLines
    from streams.demo.runner import DemoOptions, DemoRun
    from streams.reporting.demo import newest_per_model, write_report

    base = settings_from_args(args)
    stop_on_sigterm()  # as Ctrl-C: stop producing, stop the workers and the stack it started
    events = _check_file(args, base) if args.file else args.events
    report_dir(args.report)  # before anything starts: an unwritable one failed only after the whole run
    options = DemoOptions(
        events=events,
        rate=args.rate,
        label_delay=args.label_delay,
        seed=args.seed,
        file=args.file,
        label_col=args.label_col,
        id_col=args.id_col,
        keep_stack=args.keep_stack,
        drain_timeout_s=args.timeout,
        topic_prefix=args.topic_prefix,
        config_file=args.config,
        models=args.models,
    )
    demo = DemoRun(base, options)
    live = not args.no_live and sys.stderr.isatty()
    print(
        f"driftline demo: {events:,} events at {args.rate:g}/s, labels {args.label_delay} events late; "
        f"topics {demo.prefix}*, state {demo.run_dir}",
        file=sys.stderr,
        flush=True,
    )
    view = LiveView(events) if live else ProgressLines(events)
    # The report is read from the run's topics, so a stack the demo started is stopped only after it (close).
    with demo, ExitStack() as console_stack:
        if not args.no_console:
            console_stack.enter_context(_console(demo, args.console_port))
        with view:
            result = demo.run(view)
        if result.problem:
            print(f"driftline demo: {result.problem}", file=sys.stderr)
        print(
            f"driftline demo: {result.outcome}; reading the topics for the report...",
            file=sys.stderr,
            flush=True,
        )
        data = collect(demo.settings, every_model=args.models > 1)
        plain, plain_name = None, ""
        if (
            args.models == 1
        ):  # one model: its accuracy next to a plain learner's on the same events (guard tax)
            try:
                plain, plain_name = demo_baseline(demo, data.training) or (None, "")
            except DriftlineError as exc:  # a report without the baseline beats no report
                print(f"driftline demo: no plain baseline ({exc})", file=sys.stderr, flush=True)
        path, summary = write_report(result, data, Path(args.report), plain, plain_name)
        if args.models > 1:
            summary["models"] = newest_per_model(demo.settings)
            (path.parent / "models.json").write_text(json.dumps(summary["models"], indent=1, sort_keys=True))
        if demo.started_stack and not args.keep_stack:
            print("driftline demo: stopping the local stack it started", file=sys.stderr, flush=True)
        elif not demo.started_stack:
            # Session 41 (first41): after a demo killed half way, the stack it had started was found running by the
            # next one, which left it up without a word (Java still running, and nothing said why).
            print(
                "driftline demo: the local stack was running before this demo and stays up "
                "(`driftline stack down` stops it)",
                file=sys.stderr,
                flush=True,
            )
    if args.json:
        print(json.dumps(summary, sort_keys=True))
    tax = summary.get("guard_tax")
    plain_text = (
        ""
        if tax is None
        else f" (plain {summary['plain_learner']} {summary['plain_accuracy']:.3f}, guard tax {100 * tax:+.1f} pts)"
    )
    print(
        f"driftline demo: {summary['events']:,} events, {summary['predictions']:,} predictions, "
        f"{_quality(summary)}{plain_text}, {summary['versions_released']} versions, "
        f"{summary['alarms']} drift alarms, latency p50/p99 {summary['latency_p50_ms']}/"
        f"{summary['latency_p99_ms']} ms, {summary['dead_letters']} dead letters{_behind(summary, args)}\n"
        f"report: {path.resolve()}"
        + (f"\naudit trail: {demo.verify_command()}" if demo.key_file.exists() else ""),
        file=sys.stderr,
    )
    for row in summary.get("models", []):
        acc = row["accuracy"]
        print(
            f"  {row['model']:<12} v{row['version']:<4} n_learned {row['n_learned']:>6,}  recent accuracy "
            f"{'-' if acc is None else f'{acc:.3f}'}",
            file=sys.stderr,
        )
    return 0 if result.outcome in ("completed", "interrupted") else 1
