"""``driftline replay``: the learning core over a file or a synthetic stream, in-process, no Kafka needed."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from connectors.sources import BUNDLED_DATASETS, SYNTHETIC_EVENTS, SYNTHETIC_NAMES, SYNTHETIC_SEED
from driftline.config import LearnerSpec
from driftline.errors import ConfigError
from driftline.util import MAX_EVENTS
from learners.synthetic import STREAMS, synthetic_stream
from streams.cli import report_dir, settings_from_args

if TYPE_CHECKING:
    from learners.lifecycle import ModelLifecycle

#: ``--stream`` names: the accuracy suite's (``<family>-abrupt|gradual|stationary``: drifts at n/3 and 2n/3) and
#: every stream ``driftline produce synthetic`` publishes (``sea``, ``sine-drift``: one drift mid-stream), replayed
#: as the very events produce publishes for the same ``--events``/``--n`` and ``--seed``.
STREAM_NAMES = STREAMS + SYNTHETIC_NAMES


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "replay",
        help="run learners, drift monitors and guard over a file or synthetic stream (no Kafka)",
        description=(
            "Replay a labelled file (.csv/.jsonl) or a River synthetic stream through the same learners, drift "
            "monitors and guard the trainer runs. Each event is scored by the served model; its label is revealed "
            "--delay events later. Deterministic for a given --seed."
        ),
    )
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument(
        "--file",
        metavar="F",
        help="labelled events, CSV or JSON lines (.csv/.jsonl; a file named otherwise is JSON lines when "
        "it starts with '{', else CSV)",
    )
    src.add_argument(
        "--stream",
        metavar="NAME",
        type=_stream_name,
        help=f"synthetic stream: {', '.join(STREAM_NAMES)}; a name `driftline produce synthetic` takes replays "
        "the events it publishes with the same --events (here --n) and --seed; or "
        f"river:<DataSet>, a data set bundled with River ({', '.join(BUNDLED_DATASETS)})",
    )
    p.add_argument("--label-col", metavar="C", help="label column (default: settings model.label_col)")
    p.add_argument(
        "--id-col",
        metavar="C",
        help="event id column (default: a column or field named id, else the row number); with --stream, a "
        "feature of the stream, then not learned from",
    )
    p.add_argument(
        "--ts-col",
        metavar="C",
        help="column holding the event time in ms, not a feature (default: a column named ts unless it is the "
        "label or id column; as `driftline produce` reads the file); with --stream, a feature of the stream "
        "holding epoch ms, then not learned from",
    )
    p.add_argument(
        "--delay", type=int, default=0, metavar="N", help="reveal each label N events late (default 0)"
    )
    p.add_argument(
        "--delay-jitter",
        type=int,
        default=0,
        metavar="J",
        help="draw each label's delay uniformly from [delay-J, delay+J] events (at least 0), from --seed: labels "
        "arrive out of order (default 0: every label exactly --delay late)",
    )
    p.add_argument("--reference", metavar="F", help="trusted labelled file no promoted model may regress on")
    p.add_argument(
        "--out", metavar="F", help="write one JSON line per event: {index, id, prediction, proba, version}"
    )
    p.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    p.add_argument(
        "--task",
        choices=("classification", "regression"),
        help="what the label is (default: settings model.task; a file whose labels are clearly continuous "
        "numbers is replayed as regression, with a note)",
    )
    p.add_argument("--learner", metavar="NAME", help="learner kind (default: settings model.learner.name)")
    p.add_argument(
        "--challenger", metavar="NAME", help="challenger kind (default: settings or the learner's)"
    )
    p.add_argument(
        "--plain",
        metavar="NAME",
        help="learner run alongside with no guard, learning every label at the same delay, to show the guard tax "
        "(default: the served learner's kind)",
    )
    p.add_argument("--no-plain", action="store_true", help="skip the plain learner (faster)")
    p.add_argument("--release-every", type=int, metavar="N", help="labels between incremental releases")
    p.add_argument(
        "--seed",
        type=int,
        metavar="S",
        help=f"random seed (default 0; for a stream `driftline produce synthetic` takes, {SYNTHETIC_SEED}, as there)",
    )
    p.add_argument("--limit", type=int, metavar="N", help="stop after N events")
    p.add_argument(
        "--n",
        type=int,
        metavar="N",
        help="events of a --stream (default 20000; for a stream `driftline produce synthetic` takes, "
        f"{SYNTHETIC_EVENTS}, as there)",
    )
    p.add_argument("--report", metavar="DIR", help="write DIR/accuracy.png and DIR/report.html")
    p.set_defaults(func=_run)


def _stream_name(value: str) -> str:
    if value in STREAM_NAMES or value.startswith("river:"):
        return value
    raise argparse.ArgumentTypeError(
        f"invalid choice: {value!r} (choose from {', '.join(STREAM_NAMES)}, river:<DataSet>)"
    )


def _produced_rows(name: str, n: int, seed: int) -> tuple[Iterator[Any], list[int]]:
    """The events ``driftline produce synthetic --stream name --events n --seed seed`` publishes, as replay rows,
    and the drift point (produce's default: mid-stream) of a ``-drift`` stream."""
    from connectors.sources import synthetic_source

    events = synthetic_source(name, n=n, seed=seed)
    return ((e.id, e.ts, e.features, e.label) for e in events), [n // 2] if name.endswith("-drift") else []


def _river_rows(name: str, n: int) -> Iterator[Any]:
    """A River data set's events as replay rows ``(id, ts, features, label)``."""
    from connectors.sources import river_source

    for event in river_source(name, n=n):
        yield event.id, event.ts, event.features, event.label


def _jsonable(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


def _build(args: argparse.Namespace, settings: Any, label_col: str, task: str) -> ModelLifecycle:
    from learners.lifecycle import ModelLifecycle
    from learners.replay import read_rows
    from streams.commands.config import check_runtime

    model = settings.model
    learner = model.learner
    if args.learner and args.learner != learner.name:
        learner = LearnerSpec(args.learner)
    challenger = LearnerSpec(args.challenger) if args.challenger else model.challenger
    # What a worker refuses at start-up, replay refuses too (a learner whose releases no scorer would load, an
    # inline limit no artifact fits, detectors that cannot be restored), naming the field.
    check_runtime(
        dataclasses.replace(
            settings,
            model=dataclasses.replace(model, learner=learner, challenger=challenger, task=task),
        )
    )
    reference = None
    reference_file = args.reference or model.reference_file
    if reference_file:
        reference = [(x, y) for _, _, x, y in read_rows(reference_file, label_col)]
    guard = settings.guard
    if reference:
        guard = dataclasses.replace(guard, max_reference=max(guard.max_reference, len(reference)))
    lifecycle = ModelLifecycle(
        model.name,
        task,
        learner,
        challenger,
        settings.drift,
        guard,
        segment_feature=model.segment_feature,
        reference=reference,
        release_every=args.release_every or model.release_every,
        seed=args.seed,
    )
    # As the train worker (streams.train.TrainWorker._check_artifacts): a release no scorer could load, or too large
    # to travel inline with no artifact store, is withheld, so replay serves what the live system would.
    lifecycle.check_artifacts = True
    lifecycle.max_payload = None if model.artifact_store else model.max_inline_bytes
    return lifecycle


def _run(args: argparse.Namespace) -> int:
    # The learning core loads River and the report matplotlib: imported here, so `driftline --help` stays quick.
    from learners.replay import grouped_numbers, infer_task, read_rows, replay
    from learners.specs import Learner
    from streams.reporting.replay import write_replay_report

    settings = settings_from_args(args)
    produced = args.stream in SYNTHETIC_NAMES  # produce's defaults, so the same name replays the same events
    if args.seed is None:
        args.seed = SYNTHETIC_SEED if produced else 0
    if args.n is None:
        args.n = SYNTHETIC_EVENTS if produced else 20_000
    for flag, value in (("--n", args.n), ("--limit", args.limit)):
        if value is not None and not 0 <= value <= MAX_EVENTS:
            raise ConfigError(f"{flag}: must be 0 to {MAX_EVENTS:,}, got {value}")
    if args.release_every is not None and args.release_every < 1:
        # 0 was read as "not given" and replayed with the settings' value without a word (session 45).
        raise ConfigError(f"--release-every: must be at least 1, got {args.release_every}")
    if args.out and Path(args.out).is_dir():
        raise ConfigError(f"--out: {args.out} is a directory; name the file to write the predictions to")
    if args.report:
        report_dir(args.report)
    label_col = args.label_col or settings.model.label_col
    drift_points: list[int] = []
    task = args.task or settings.model.task
    if args.file:
        rows = read_rows(args.file, label_col, args.id_col, args.ts_col, regression=task == "regression")
        grouped, rows = grouped_numbers(rows)
        for col, example in grouped.items():
            print(
                f"replay: {col!r} holds numbers with thousands separators ({example!r}): read as text, one "
                "category per value; write them without separators to learn from them as numbers",
                file=sys.stderr,
            )
        title = f"driftline replay: {args.file}"
        if not args.task:
            task, rows = infer_task(rows, task, label_col)
            if task != settings.model.task:
                print(
                    f"replay: the labels in {label_col!r} are continuous numbers: replaying as {task} "
                    f"(--task or model.task sets it)",
                    file=sys.stderr,
                )
    elif args.stream.startswith("river:"):
        from connectors.sources import river_source

        river_source(args.stream[len("river:") :], n=0)  # an unknown or remote data set: refused here
        rows = _river_rows(args.stream[len("river:") :], args.n)
        title = f"driftline replay: {args.stream}"
        if not args.task:
            task, rows = infer_task(rows, task)
            if task != settings.model.task:
                print(f"replay: {args.stream} has continuous labels: replaying as {task}", file=sys.stderr)
    else:
        make = _produced_rows if produced else synthetic_stream
        rows, drift_points = make(args.stream, args.n, args.seed)
        title = f"driftline replay: {args.stream}"
    if args.stream and (args.id_col or args.ts_col):
        from learners.replay import stream_columns

        rows = stream_columns(rows, args.id_col, args.ts_col, args.stream)
    if args.delay < 0:
        raise ConfigError(f"--delay must be >= 0, got {args.delay}")
    if args.delay_jitter < 0:
        raise ConfigError(f"--delay-jitter must be >= 0, got {args.delay_jitter}")
    lifecycle = _build(args, settings, label_col, task)
    plain = None
    if not args.no_plain:
        # The guard tax is measured against a learner that learns every label the moment it arrives, unguarded.
        spec = LearnerSpec(args.plain) if args.plain else lifecycle.learner
        plain = Learner(spec, lifecycle.task, args.seed)
    tty = sys.stderr.isatty()

    def progress(i: int) -> None:
        if tty:
            print(f"\rreplay: {i} events, served version {lifecycle.served_version}", end="", file=sys.stderr)

    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as stack:
        out: IO[str] | None = stack.enter_context(open(args.out, "w", encoding="utf-8")) if args.out else None

        def write(record: dict[str, Any]) -> None:
            assert out is not None
            record["prediction"] = _jsonable(record["prediction"])
            out.write(json.dumps(record, default=str) + "\n")

        result = replay(
            rows,
            lifecycle,
            delay=args.delay,
            limit=args.limit,
            on_prediction=write if out else None,
            progress=progress,
            plain=plain,
            delay_jitter=args.delay_jitter,
            seed=args.seed,
        )
    if tty:
        print(file=sys.stderr)
    summary = result.summary()
    summary.update(delay=args.delay, learner=lifecycle.learner.name, seed=args.seed)
    if args.delay_jitter:
        summary["delay_jitter"] = args.delay_jitter
    if drift_points:
        summary["drift_points"] = drift_points
    if args.report:
        regression = result.task == "regression"
        served: Any = result.errors if regression else result.outcomes
        plain_series: Any = result.plain_errors if regression else result.plain_outcomes
        baselines = {f"plain {result.plain_name} (no guard)": plain_series} if plain else None
        html = write_replay_report(
            args.report, summary, served, title=title, drift_points=drift_points, baselines=baselines
        )
        summary["report"] = str(html)
    if args.json:
        print(json.dumps(summary, default=str))
        return 0
    metric = "accuracy" if "accuracy" in summary else "mae"
    print(f"events        {summary['n']}")
    value = summary[metric]
    print(f"{metric:<13} " + ("n/a (no event was labelled)" if value is None else f"{value:.4f}"))
    if "guard_tax" in summary:
        plain_value = summary[f"plain_{metric}"]
        tax = summary["guard_tax"]
        shown = f"{100 * tax:+.2f} points" if metric == "accuracy" else f"{100 * tax:+.2f} % MAE"
        print(f"plain {metric:<7} {plain_value:.4f} ({summary['plain']['learner']}, every label, no guard)")
        print(f"guard tax     {shown} (plain minus served; negative = the guard gained)")
    print(f"drift alarms  {len(summary['alarms'])} {summary['alarms'][:10]}")
    kinds = [p["reason"] for p in summary["promotions"]]
    print(f"promotions    {len(kinds)} ({', '.join(f'{k}={kinds.count(k)}' for k in sorted(set(kinds)))})")
    print(f"rollbacks     {len(summary['rollbacks'])}")
    print(f"rejections    {summary['rejections']}, holds {summary['holds']}")
    print(f"final version {summary['final_version']}, n_learned {summary['n_learned']}")
    if summary.get("withheld"):
        first = summary["withheld_first"]
        print(
            f"withheld      {summary['withheld']} releases, as the trainer would (first at event {first['index']}, "
            f"{first['problem']}: {first['message']})"
        )
    if args.report:
        print(f"report        {summary['report']}")
    return 0
