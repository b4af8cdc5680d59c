"""``driftline bench [--quick] [--json]``: the benchmark suite through the real local broker (see BENCHMARKS.md)."""

from __future__ import annotations

import argparse
import json
import sys

from driftline.errors import ConfigError
from streams.cli import (
    positive_int,
    positive_seconds,
    settings_from_args,
    stop_on_sigterm,
    whole_number,
)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "bench",
        help="benchmark the pipeline through the real local Kafka",
        description=(
            "Measure scoring and learning throughput, feature-to-prediction latency at half the maximum rate, and "
            "release-to-scorers time through the local Kafka and Redis (started if needed), next to a bare River "
            "loop and a hand-written confluent-kafka loop on the same events. Each run uses a fresh topic prefix "
            "and deletes its topics, consumer groups and Redis keys afterwards. Progress goes to stderr; BENCHMARKS.md "
            "explains every figure."
        ),
    )
    p.add_argument("--quick", action="store_true", help="a smaller run that finishes in a few minutes")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    p.add_argument(
        "--events", type=positive_int, help="events per measurement (default 50000, 20000 with --quick)"
    )
    p.add_argument(
        "--score-events",
        type=positive_int,
        help="events of the score phase, whose windows' median rate the latency phase halves (default 3x --events)",
    )
    p.add_argument("--releases", type=positive_int, help="releases timed per model for release-to-scorers")
    p.add_argument(
        "--latency-seconds", type=positive_seconds, help="how long to produce at half rate for latency"
    )
    p.add_argument(
        "--models",
        help="comma-separated learner kinds (default logistic_regression,hoeffding_tree)",
    )
    p.add_argument("--no-stall", action="store_true", help="skip the large-model hot-swap stall measurement")
    p.add_argument(
        "--soak",
        type=whole_number,
        metavar="N",
        default=0,
        help="also run N events through one worker, sampling RSS",
    )
    p.add_argument(
        "--soak-model",
        metavar="KIND",
        help="the learner kind the soak's worker serves (default logistic_regression)",
    )
    p.add_argument(
        "--trainer-models",
        type=whole_number,
        metavar="N",
        help="learning scale-out: labels/s of 1 and of 2 train processes over N models (default 50; 0 skips)",
    )
    p.add_argument(
        "--keep", action="store_true", help="keep the run's topics, consumer groups, Redis keys and work dir"
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from bench.suite import Options, render, run_bench
    from learners.specs import KINDS as LEARNER_KINDS  # here: River's import is not for every CLI start

    settings = settings_from_args(args)
    stop_on_sigterm()  # the run's workers, topics and groups are removed on the way out (env.close)
    # Checked before a broker, topic or worker is set up, not after minutes of measuring the first kind.
    for flag, kinds in (("--models", args.models or ""), ("--soak-model", args.soak_model or "")):
        for kind in filter(None, (k.strip() for k in kinds.split(","))):
            if kind not in LEARNER_KINDS:
                known = ", ".join(sorted(LEARNER_KINDS))
                raise ConfigError(f"{flag}: unknown learner kind {kind!r}; known: {known}")
    changes = {
        key: value
        for key, value in {
            "events": args.events,
            "score_events": args.score_events,
            "releases": args.releases,
            "latency_seconds": args.latency_seconds,
            "trainer_models": args.trainer_models,
            "soak_model": args.soak_model,
            "models": tuple(m.strip() for m in args.models.split(",") if m.strip()) if args.models else None,
        }.items()
        if value is not None
    }
    changes.update(stall=not args.no_stall, soak=args.soak, keep=args.keep)
    opts = Options.quick(**changes) if args.quick else Options(**changes)
    result = run_bench(settings, opts)
    if args.json:
        print(json.dumps(result, sort_keys=True))
    else:
        print(render(result))
    sys.stdout.flush()
    return 0
