"""``driftline status``: one screen about a deployment - stack, workers, lag, served versions, releases, drift.

Read-only: consumer groups and offsets through the AdminClient, releases from the compacted ``models`` topic,
the trainer's live state from Redis, and the last hour of the ``drift`` topic (found by timestamp, so an old
topic is not read from the beginning). Exit 0 when Kafka and Redis answer, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from datetime import UTC, datetime
from typing import Any

from connectors.kafka_view import describe_replication, replication_degraded
from driftline.errors import DriftlineError
from driftline.settings import Settings
from driftline.util import one_line, terminal_safe
from streams.audit import read_topic
from streams.audit_verify import file_chains
from streams.cli import settings_from_args, unknown_model
from streams.serving import refused_newer
from streams.status import collect_status, stack_state_text, withheld_text
from streams.trainer_status import CONFIG_DIFFERS_FIX, ROUTING_DIFFERS_FIX, differences_text

UNVERIFIED_SHOWN = (
    5  # forged releases named one by one; more are summed up in one line (--json lists them all)
)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "status",
        help="one screen: stack, workers, consumer lag, served versions, releases, joins, drift, dead letters",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument(
        "--all-prefixes",
        action="store_true",
        help="show the worker groups of every topic prefix, not only this one",
    )
    p.set_defaults(func=run)


def _when(ms: int | None) -> str:
    if not ms:
        return "-"
    ago = time.time() - ms / 1000
    stamp = datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return f"{stamp} ({_ago(ago)} ago)"


def _ago(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f}{unit}"
    return f"{max(seconds, 0):.0f}s"


def render(status: dict[str, Any]) -> str:
    """The one-screen text form of :func:`collect_status`."""
    lines = [f"driftline status (topic prefix {status['topic_prefix']!r})", ""]
    stack = status["stack"]
    problems = describe_replication(status["kafka_replication"]) if status.get("kafka_replication") else []
    for name in ("kafka", "redis"):
        s = stack[name]
        degraded = name == "kafka" and bool(problems)
        state = stack_state_text(name, s, degraded) + (" <-" if degraded or not s["up"] else "")
        lines.append(f"  {name:<6} {s['address']:<22} {state}")
        if name == "kafka":
            lines += [f"         {p}" for p in problems]
    if "workers" not in status:
        lines.append("\n  Kafka is down: start it with 'driftline stack up'")
        return "\n".join(lines)
    lines += ["", "workers (consumer groups)"]
    errors = status.get("workers_errors") or []
    if errors:
        lines.append(
            f"  groups could not be listed from every broker, the list may be incomplete: {errors[0][:100]} <-"
        )
    elif not status["workers"]:
        lines.append("  none seen for this prefix (start one with 'driftline worker')")
    for g in status["workers"]:
        lag = ", ".join(
            f"{t.removeprefix(status['topic_prefix'])} {n:,}" for t, n in sorted(g["lag"].items())
        )
        idle = not g["members"] and any(g["lag"].values())  # records waiting, nobody to read them
        lines.append(
            f"  {g['group']:<44} {g['state']:<12} {len(g['members'])} member(s)  lag: {lag or '-'}"
            + ("  <- no member reads it" if idle else "")
        )
        lines += _member_lines(g, status["topic_prefix"], _served_by_scorer(status))
        if g["group"].endswith("-score") and status.get("scorer_routing_differences"):
            lines.append(
                "    these scorers route with DIFFERENT settings: "
                f"{differences_text(status['scorer_routing_differences'])} <- {ROUTING_DIFFERS_FIX}"
            )
        if g["group"].endswith("trainers") and status.get("trainer_config_differences"):
            lines.append(
                "    these trainers run with DIFFERENT settings: "
                f"{differences_text(status['trainer_config_differences'])} <- {CONFIG_DIFFERS_FIX}"
            )
    lines += ["", "models"]
    for m in status["models"]:
        rel, live = m["latest_release"], m["trainer"]
        served = _served(m)
        learned = (
            f", n_learned {live['n_learned']:,}{' (learning PAUSED)' if live['paused'] else ''}"
            if live
            else ""
        )
        owner = f", trained by {live['owner']}" if live and live.get("owner") else ""
        lines.append(
            f"  {m['model']:<16} serving {served}{learned}{owner}; {m['releases']} release(s) retained"
        )
        lines += _overdue(m)
        lines += _refusals(m)
        if rel:
            acc = f", accuracy {rel['accuracy']:.3f}" if isinstance(rel["accuracy"], float) else ""
            lines.append(
                f"    last release v{rel['version']} ({rel['reason']}) {_when(rel['created_at'])}{acc}"
            )
            d = rel["decision"]
            if d.get("outcome"):
                lines.append(f"    guard: {d['outcome']} ({d.get('reason')}) {str(d.get('text') or '')[:90]}")
            elif d.get("text"):  # an older release's decision in plain words
                lines.append(f"    decision: {str(d['text'])[:90]}")
        if live and live.get("damaged"):
            lines.append(
                f"    the trainer's status in Redis is DAMAGED (fields {', '.join(live['damaged'])} are not what the "
                "trainer writes; read as empty): a running trainer rewrites them after its next batch"
            )
        withheld = live.get("withheld") if live else None
        if withheld:
            lines.append(_withheld(withheld, live["served_version"]))
        if live and live.get("held_candidate"):
            lines.append("    a candidate is HELD for approval: `driftline models promote held` to serve it")
        if live and live["paused"]:
            if live.get("pause_discard"):  # the trainer's count of dropped labels, over its lifetime
                n = live.get("discarded", 0)
                what = f"labels arriving now are discarded (pause --discard); {n:,} discarded so far"
            else:
                what = f"{live.get('held_examples', 0):,} label(s) held for resume"
            lines.append(f"    learning PAUSED: {what}")
        joins = m.get("joins")
        if joins:  # the deployment's one join store (model.name's entry): every model's joins
            age = joins["oldest_pending_age_s"]
            pending, parked = joins["pending"], joins["parked"]
            lines.append(
                f"    joins (every model): {'?' if pending is None else f'{pending:,}'} prediction(s) waiting"
                " for a label"
                + (f" (oldest {_ago(age)})" if age is not None else "")
                + f", {'?' if parked is None else f'{parked:,}'} label(s) parked waiting for their prediction"
            )
            for bad in joins.get("damaged", []):
                lines.append(
                    f"    join store key {bad['key']} is DAMAGED (holds a {bad['type']}, expected a"
                    f" {bad['expected']}): the scorers replace it at their next batch; or delete it"
                    f" (redis-cli DEL {bad['key']})"
                )
        if not m.get("releases_verified", True):
            lines.append("    releases NOT verified: no signing key configured (DRIFTLINE_SIGNING_KEY)")
        unverified = m.get("unverified_releases", [])
        for u in unverified[: UNVERIFIED_SHOWN if len(unverified) > UNVERIFIED_SHOWN else None]:
            lines.append(
                f"    UNVERIFIED release v{u['version']} ({u['reason']}): ignored by scorers and trainer"
            )
        if len(unverified) > UNVERIFIED_SHOWN:  # a flood of forged or garbled records: sum it up in one line
            reasons = Counter(str(u["reason"]) for u in unverified)
            by = ", ".join(f"{r}: {n:,}" for r, n in reasons.most_common())
            lines.append(
                f"    ... {len(unverified):,} UNVERIFIED release record(s) in all ({by}), ignored by scorers and"
                f" trainer; `driftline models list --model {m['model']}` names them"
            )
    drift = status["drift_last_hour"]
    lines += ["", f"drift alarms in the last hour: {drift['total']}"]
    for signal, n in drift["by_signal"].items():
        lines.append(f"  {one_line(signal):<44} {n}")
    dead = status.get("deadletters_last_hour") or {"total": 0, "by_reason": {}}
    lines += ["", f"dead letters in the last hour: {dead['total']}{' <-' if dead['total'] else ''}"]
    for reason, n in dead["by_reason"].items():
        lines.append(f"  {one_line(reason[:70]):<70} {n}")
    if dead.get("newest"):
        d = dead["newest"]
        lines.append(f"  newest: {_when(d['ts'])}: {one_line(str(d['error'])[:100])}")
        lines.append("  (see them with `driftline tail deadletter`)")
    return "\n".join(lines)


def _served(m: dict[str, Any]) -> str:
    """What answers the model's events: the versions the scorers report, else what was released (no scorer
    reported it: none runs, or Redis did not answer)."""
    scorers = m.get("scorers")
    if m.get("served_version_from") == "scorers" and scorers:
        versions = scorers["versions"]
        if not versions:
            return f"NO version ({scorers['scorers']} scorer(s) reported, none serves one) <-"
        text = ", ".join(f"v{v} ({n} scorer{'s' if n != 1 else ''})" for v, n in versions.items())
        return text + (" <- the scorers differ" if len(versions) > 1 else "")
    if m["served_version"] is None:
        return "nothing released"
    why = "no scorer has reported" if scorers is not None else "Redis did not say what the scorers serve"
    if scorers and scorers.get("overdue"):
        why = f"no live scorer: {scorers['overdue']} not reporting <-"
    return f"v{m['served_version']} (released; {why})"


def _overdue(m: dict[str, Any]) -> list[str]:
    """Scorers whose report is overdue: named, not counted. Killed, frozen (SIGSTOP), or cut off from Redis look the
    same from here, so the line names all three (it said "killed?" of a frozen scorer, first41) and what to check."""
    by_scorer = (m.get("scorers") or {}).get("by_scorer") or {}
    gone = [(k, e) for k, e in by_scorer.items() if e.get("overdue")]
    lines = [
        f"    scorer {k} NOT REPORTING for {e['age_s']:.0f} s (it served "
        f"{'-' if e.get('served') is None else 'v' + str(e['served'])}): not counted as serving; stopped, frozen "
        "or unreachable: check that process on its host"
        for k, e in gone[:5]
    ]
    if len(gone) > 5:
        lines.append(f"    ... and {len(gone) - 5} more scorer(s) not reporting")
    return lines


def _withheld(withheld: dict[str, Any], serving: int) -> str:
    """The trainer's newest withheld release (:func:`streams.status.withheld_text`; the console says the same)."""
    return "    " + withheld_text(withheld, serving, _when)


def _refusals(m: dict[str, Any]) -> list[str]:
    """A signed release the scorers could not load: named, with who refused it and why, and what to do."""
    lines = []
    for r in refused_newer(m.get("scorers")):
        lines.append(
            f"    v{r['version']} was REFUSED by {r['scorers']} scorer(s) ({r['reason']}): "
            f"{str(r['message'])[:200]} <-"
        )
    served = m.get("served_version")
    if lines and served is not None:
        lines.append(
            f"    the scorers still serve v{served}; publish a release they can load (e.g. `driftline models "
            f"promote {served} --model {m['model']}` releases v{served} again as a new version)"
        )
    return lines


def never_seen(settings: Settings, status: dict[str, Any]) -> bool:
    """True when nothing was ever seen for ``model.name``: no release (verified or not), no trainer status, no
    scorer serving it, no audit chain (in the state dir or on the audit topic). ``--model nosuch status`` listed
    "nosuch serving nothing released" and exited 0 (session 35)."""
    name = settings.model.name
    entry = next((m for m in status.get("models", []) if m["model"] == name), None)
    if entry is None:  # Kafka down: nothing was read, the stack lines say so
        return False
    scorers = entry.get("scorers") or {}
    if entry["latest_release"] or entry["unverified_releases"] or entry["trainer"] or scorers.get("scorers"):
        return False
    if file_chains(settings, None, name):
        return False
    try:
        return name not in read_topic(settings)
    except DriftlineError:  # the audit topic could not be read to its end: it may name the model
        return False


def run(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    status = collect_status(settings, all_prefixes=args.all_prefixes)
    if getattr(args, "model", None) and status["stack"]["up"] and never_seen(settings, status):
        known = [m["model"] for m in status["models"]]
        what = f"was never seen (no release on {settings.topic('models')}, no trainer status, no audit chain)"
        print(unknown_model("status", settings.model.name, what, known), file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(status, sort_keys=True, default=str))
    else:
        print(terminal_safe(render(status)))
    # A cluster is degraded until every partition's replicas are in sync again, also once every node answers
    return 0 if status["stack"]["up"] and not replication_degraded(status.get("kafka_replication")) else 1


def _served_by_scorer(status: dict[str, Any]) -> dict[str, list[str]]:
    """``{scorer (host-pid): ["default v12", ...]}``: what each scorer reports it serves, every model."""
    out: dict[str, list[str]] = {}
    for m in status.get("models") or []:
        for scorer, entry in ((m.get("scorers") or {}).get("by_scorer") or {}).items():
            served = entry.get("served")
            # A live scorer reports every 10 s: one overdue (streams.serving.OVERDUE_S) was most likely killed.
            silent = f" (silent {entry['age_s']:.0f}s)" if entry.get("overdue") else ""
            out.setdefault(scorer, []).append(
                f"{m['model']} {'-' if served is None else f'v{served}'}{silent}"
            )
    return out


def _member_lines(group: dict[str, Any], prefix: str, served: dict[str, list[str]]) -> list[str]:
    """One line per member of a worker group with the partitions it is assigned now and, for a scorer, the
    versions it reports serving: which worker serves what."""
    out = []
    counts = Counter(group["members"])
    for member, n in counts.items():
        topics = (group.get("assignments") or {}).get(member) or {}
        parts = "; ".join(
            f"{t.removeprefix(prefix)} {','.join(map(str, ps))}" for t, ps in sorted(topics.items()) if ps
        )
        # A scorer's consumer is named <client id>-score-<host>-<pid>, its report in Redis <host>-<pid>.
        client = member.rsplit("@", 1)[0]
        models = next((v for k, v in served.items() if client.endswith(f"-score-{k}")), [])
        shown = ", ".join(models[:3]) + (f" and {len(models) - 3} more model(s)" if len(models) > 3 else "")
        # Members of one name (workers of a release before 35 all called "driftline"): their partitions together.
        name = f"{member} (x{n})" if n > 1 else member
        out.append(f"    {name:<50} {parts or 'no partition'}" + (f"  serving {shown}" if shown else ""))
    return out
