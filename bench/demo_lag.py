"""Where a finished demo run's served model lag came from, and where its guard tax was paid (BENCHMARKS.md, session 36).

``driftline demo`` prints how far behind the labelled stream the served model was (``served_behind_p50_events``);
this splits that number, per answered event ``k`` scored at time ``t`` by version ``v``, into parts that add up to
``k - index(v)`` (``index``: where in the labelled stream the release was decided):

- ``label_delay``: events whose labels were not published by ``t`` (the demo's ``--label-delay``, plus the scoring
  latency in events);
- ``join``: labels published by ``t`` but not yet joined into ``training`` (Kafka CreateTimes);
- ``trainer``: labels joined by ``t`` that no release decided by ``t`` covers: the trainer's queue (its CPU), its
  learning and the guard's cadence (labels wait for the next release; the cold start's end waits for the test);
- ``to_scorer``: releases decided by ``t`` that the scorer did not serve yet: the transaction still open or
  committing, the follower's load, the swap.

``cold_start_end`` is the last event answered by the untrained v1. With ``--segments N`` the answered events are
cut into segments of ``N`` events: each part's mean, and the guard tax paid there (plain learner right minus served
right, over all answered events: the segments add up to the run's tax), the plain learner being the demo's (the
built-in stream regenerated for ``--seed``; a run on ``--file`` has no plain column here).

Read from the run's topics, so it needs the run's stack still up (``driftline demo --keep-stack``) and its prefix;
the plain learner is the configured one, so give the run's config file if it had one (``--config``, else
``DRIFTLINE_CONFIG``): with the default, a run that served logistic regression is compared with the ``auto`` pool.

    python -m bench.demo_lag --prefix demo-20261206-113000-ab12. --segments 200
"""

from __future__ import annotations

import argparse
import bisect
import json
from dataclasses import dataclass
from typing import Any

from connectors.tail import assign_tail, read_until_end
from driftline.errors import StackError
from driftline.settings import Settings, load_settings
from driftline.util import percentile
from schemas.codec import default_codec

PARTS = ("label_delay", "join", "trainer", "to_scorer")


@dataclass
class Answered:
    """One event answered by a trained version: its position, the parts of its lag, and whether it was right."""

    k: int
    parts: tuple[int, int, int, int]
    right: bool


def _records(settings: Settings, topic: str) -> list[tuple[dict[str, Any], int]]:
    try:
        consumer, ends = assign_tail(settings, topic, None)
    except StackError:
        return []
    try:
        items = read_until_end(consumer, default_codec(), topic, ends)
    finally:
        consumer.close()
    model = settings.model.name
    return [
        (it.value, it.timestamp_ms)
        for it in items
        if it.ok and it.value is not None and it.value.get("model") in (model, None)
    ]


def _event_order(record: tuple[dict[str, Any], int]) -> tuple[int, int, str]:
    """Event time, then numeric ids (the built-in stream's, a file's row numbers) in numeric order, others by text."""
    value = record[0]
    event_id = str(value["id"])
    return int(value["event_ts"]), int(event_id) if event_id.isdigit() else 1 << 62, event_id


def _release_index(value: dict[str, Any]) -> int:
    try:
        decision = json.loads(value.get("decision") or "null") or {}
    except ValueError:
        decision = {}
    index = decision.get("index")
    return int(index) if isinstance(index, (int, float)) else int(value["metrics"].get("n_learned", 0))


Records = list[tuple[dict[str, Any], int]]  # (decoded value, Kafka timestamp ms)


def split(settings: Settings) -> tuple[list[Answered], int | None, list[dict[str, Any]]]:
    """:func:`lag_parts` of the run's ``models``, ``training`` and ``predictions`` topics."""
    return lag_parts(
        _records(settings, "models"), _records(settings, "training"), _records(settings, "predictions")
    )


def lag_parts(
    models: Records, training_records: Records, predictions: Records
) -> tuple[list[Answered], int | None, list[dict[str, Any]]]:
    """The answered events of a run (``k``: the event's position, by event time, then id), the last event
    answered by the untrained v1, and the training rows with ``id`` set to ``k`` (for the plain learner, which
    regenerates the built-in stream, whose ids are positions)."""
    releases = sorted((int(v["version"]), _release_index(v), int(v["created_at"])) for v, _ in models)
    training = sorted(training_records, key=_event_order)
    scored_at = {v["id"]: int(v.get("scored_at") or ts) for v, ts in predictions}
    labelled = sorted(int(v["label_ts"]) for v, _ in training)
    joined = sorted(ts for _, ts in training)
    index_of = {version: index for version, index, _ in releases}
    decided_at, decided = [], []  # by decision time: the furthest index any release decided so far covers
    furthest = 0
    for _, index, created in sorted(releases, key=lambda r: r[2]):
        furthest = max(furthest, index)
        decided_at.append(created)
        decided.append(furthest)
    out: list[Answered] = []
    cold_end = None
    for k, (v, _) in enumerate(training):
        if v.get("prediction") is None:
            cold_end = k
            continue
        t = scored_at.get(v["id"], int(v["event_ts"]))
        n_labelled = bisect.bisect_right(labelled, t)
        n_joined = bisect.bisect_right(joined, t)
        at = bisect.bisect_right(decided_at, t) - 1
        n_decided = decided[at] if at >= 0 else 0
        served = index_of.get(int(v.get("version") or 0), 0)
        parts = (k - n_labelled, n_labelled - n_joined, n_joined - n_decided, n_decided - served)
        out.append(Answered(k, parts, v.get("prediction") == v.get("label")))
    return out, cold_end, [dict(v, id=str(k)) for k, (v, _) in enumerate(training)]


def plain_right(
    settings: Settings, rows: list[dict[str, Any]], label_delay: int, seed: int
) -> list[bool | None]:
    """Per training row: did the demo's plain learner (same learner, no guard) answer it right."""
    from streams.demo.baseline import plain_correct
    from streams.demo.stream import demo_stream

    events, _ = demo_stream(len(rows), seed=seed)
    return plain_correct(events, rows, label_delay, settings.model.learner, seed=seed)


def summary(answered: list[Answered], plain: list[bool | None] | None, segment: int) -> dict[str, Any]:
    """p50/p90/mean of each part and of the total; per segment, each part's mean and the tax paid there."""
    out: dict[str, Any] = {"answered": len(answered)}
    for i, name in enumerate((*PARTS, "total")):
        values = [float(sum(a.parts) if name == "total" else a.parts[i]) for a in answered]
        out[name] = {
            "p50": percentile(values, 50),
            "p90": percentile(values, 90),
            "mean": round(sum(values) / len(values), 1) if values else None,
        }
    pairs = [(a, plain[a.k]) for a in answered if plain is not None and plain[a.k] is not None]
    if pairs:
        out["guard_tax_pts"] = round(100 * sum(bool(p) - a.right for a, p in pairs) / len(pairs), 2)
    segments = []
    for start in range(0, (max((a.k for a in answered), default=-1) // segment + 1) * segment, segment):
        seg = [a for a in answered if start <= a.k < start + segment]
        if not seg:
            continue
        row: dict[str, Any] = {"from": start, "n": len(seg)}
        row.update({name: round(sum(a.parts[i] for a in seg) / len(seg)) for i, name in enumerate(PARTS)})
        if pairs:
            paid = sum(bool(p) - a.right for a, p in pairs if start <= a.k < start + segment)
            row["tax_pts"] = round(100 * paid / len(pairs), 2)  # of the whole run's answered events
        segments.append(row)
    out["segments"] = segments
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--prefix", required=True, help="the demo run's topic prefix (with its trailing dot)")
    p.add_argument("--label-delay", type=int, default=300, help="the run's --label-delay (default 300)")
    p.add_argument("--seed", type=int, default=7, help="the run's --seed (default 7)")
    p.add_argument("--segments", type=int, default=200, metavar="N", help="events per segment (default 200)")
    p.add_argument(
        "--config", metavar="FILE", help="the run's config file (its learner is the plain learner)"
    )
    p.add_argument("--no-plain", action="store_true", help="no plain learner (a run on --file)")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    settings = load_settings(args.config, overrides={"kafka.topic_prefix": args.prefix})
    answered, cold_end, rows = split(settings)
    if not answered:
        raise SystemExit(f"no answered events under prefix {args.prefix!r} (is the run's stack up?)")
    plain = None if args.no_plain else plain_right(settings, rows, args.label_delay, args.seed)
    result = {"prefix": args.prefix, "cold_start_end": cold_end, **summary(answered, plain, args.segments)}
    if args.json:
        print(json.dumps(result))
        return 0
    print(
        f"{args.prefix}: {result['answered']} answered events; the untrained v1 answered up to event {cold_end}"
    )
    for name in (*PARTS, "total"):
        q = result[name]
        print(f"  {name:>11}: p50 {q['p50']:>6} p90 {q['p90']:>6} mean {q['mean']:>7} events")
    if "guard_tax_pts" in result:
        print(f"  guard tax {result['guard_tax_pts']:+.2f} points")
    for row in result["segments"]:
        tax = f" tax {row['tax_pts']:+.2f}" if "tax_pts" in row else ""
        parts = " ".join(f"{name} {row[name]}" for name in PARTS)
        print(f"  events {row['from']:>6}+ (n={row['n']}): {parts}{tax}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
