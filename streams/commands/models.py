"""``driftline models list|show|promote|rollback``: the model registry (the compacted ``models`` topic) and
manual control (ControlCommands on ``control``, applied live by the trainer)."""

from __future__ import annotations

import argparse
import json
import math
import sys
from typing import Any

import redis

from connectors.kafka_client import check_reachable
from connectors.redis_store import check_redis_reachable, redis_address, redis_client
from driftline.errors import ArtifactError, ConfigError
from driftline.settings import Settings
from driftline.util import one_line
from streams.audit import read_topic
from streams.cli import settings_from_args, unknown_model, version_number
from streams.commands.models_diff import register_diff
from streams.commands.models_print import not_served_note, print_models, print_releases, refused_text, when
from streams.control import wait_reply
from streams.model_registry import (
    adopt_live_counts,
    adopt_serving,
    describe,
    model_owners,
    ownership,
    read_registry,
    release_list,
    send_command,
    trainer_lags,
)
from streams.releases import read_checked_releases
from streams.serving import read_serving
from streams.trainer_status import trainer_status


def _positive_seconds(text: str) -> float:
    """``--timeout``: a finite number of seconds > 0 (``--no-wait`` is the way not to wait)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, got {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"expected a number of seconds > 0 (or --no-wait), got {text!r}")
    return value


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "models",
        help="list, show, promote and roll back model versions",
        description="The model registry (releases on the compacted models topic) and manual control.",
    )
    msub = p.add_subparsers(dest="models_command", metavar="ACTION", required=True)
    ls = msub.add_parser(
        "list",
        help="every model: its served version, owner (trainer) and lag; with --model, its retained releases",
        description="Every model of the deployment with its served version, the trainer that owns it and that "
        "trainer's lag on the model's training partition; with --model M, every retained release of M, newest "
        "first. --json prints every release of every model (one JSON object per line, the current one of each "
        "model with its owner, lag and, as in `models show`, the trainer's live n_learned, the release's figure as "
        "n_learned_in_release).",
    )
    ls.add_argument("--json", action="store_true", help="one JSON object per line")
    _model_option(ls, "every model")
    ls.set_defaults(func=_list)
    show = msub.add_parser(
        "show", help="describe a version (default: the current champion, with the trainer's live n_learned)"
    )
    show.add_argument("version", nargs="?", type=version_number)
    show.add_argument("--json", action="store_true")
    _model_option(show)
    show.set_defaults(func=_show)
    pr = msub.add_parser(
        "promote",
        help="serve VERSION (a retained release), or 'held' (a candidate the guard held for approval), or 'challenger'",
    )
    pr.add_argument("version", help="a version number, 'held' or 'challenger'")
    _control_options(pr, _promote)
    rb = msub.add_parser(
        "rollback", help="go back to the previous served version (a new release, reason rollback)"
    )
    _control_options(rb, _rollback)
    pause_help = (
        "pause learning and releases (scoring goes on); labels arriving meanwhile are kept and learned "
        "in order on resume, or dropped and counted with --discard"
    )
    pause = msub.add_parser(
        "pause", help=pause_help, description=pause_help[0].upper() + pause_help[1:] + "."
    )
    pause.add_argument(
        "--discard",
        action="store_true",
        help="drop the labels that arrive while paused (counted in driftline_paused_examples_total"
        '{outcome="discarded"}) instead of keeping them for resume',
    )
    _control_options(pause, _pause)
    resume = msub.add_parser(
        "resume", help="resume learning: the labels held during the pause are learned first"
    )
    _control_options(resume, _resume)
    st = msub.add_parser(
        "set",
        help="change a setting live, e.g. guard.alpha=0.01 drift.adwin_delta=0.001 release_every=500 "
        "(checked here with the trainer's rules before it is sent)",
    )
    st.add_argument("assignments", nargs="+", metavar="KEY=VALUE")
    _control_options(st, _set)
    live = msub.add_parser(
        "settings",
        help="the trainer's live settings and where each value came from (default, file, env, set)",
    )
    live.add_argument("--json", action="store_true", help="one JSON object")
    _model_option(live)
    live.set_defaults(func=_live_settings)
    register_diff(msub)  # `models diff A B`, in its own module (streams/commands/models_diff.py)


def _model_option(
    p: argparse.ArgumentParser, default: str = "the global --model, else DRIFTLINE_MODEL / model.name"
) -> None:
    # SUPPRESS: given here it sets the same `model` as the global --model (and so the settings' model.name).
    p.add_argument(
        "--model", default=argparse.SUPPRESS, metavar="NAME", help=f"one model (default: {default})"
    )


def _control_options(p: argparse.ArgumentParser, func: Any) -> None:
    _model_option(p)
    p.add_argument(
        "--json", action="store_true", help="print the command sent and the trainer's answer as JSON"
    )
    p.add_argument(
        "--no-wait", action="store_true", help="send and exit without waiting for the trainer's answer"
    )
    p.add_argument(
        "--timeout",
        type=_positive_seconds,
        default=30.0,
        metavar="S",
        help="seconds to wait for the trainer's answer (default 30; exit 3 when none came)",
    )
    p.set_defaults(func=func)


def _settings(args: argparse.Namespace) -> Settings:
    return settings_from_args(args)


def _list(args: argparse.Namespace) -> int:
    settings = _settings(args)
    check_reachable(settings)
    checked = read_checked_releases(settings)
    owners, lags = model_owners(settings), trainer_lags(settings)
    names = sorted({str(r.get("model")) for r in checked.verified + checked.unchecked} | set(owners))
    known = names
    if getattr(args, "model", None):
        names = [settings.model.name]
    rows = []
    for name in names:
        serving = read_serving(settings, name)
        for row in release_list(read_registry(settings.for_model(name), checked)):
            if row["current"]:
                row.update(ownership(settings, name, owners, lags))
                adopt_live_counts(row, owners.get(name))
            adopt_serving(row, serving)
            rows.append(row)
    if not rows and getattr(args, "model", None):
        # Named a model with none: say so, and which models there are, not "no releases" on a busy topic.
        what = f"has no release on {settings.topic('models')}"
        print(unknown_model("models list", settings.model.name, what, known), file=sys.stderr)
        return 1
    if args.json:
        for row in rows:
            print(json.dumps(row, sort_keys=True, default=str))
        return 0
    if not rows:
        print(f"no releases on {settings.topic('models')}")
        return 0
    if len(names) > 1:
        print_models(rows)
    else:
        print_releases(rows)
    return 0


def _show(args: argparse.Namespace) -> int:
    settings = _settings(args)
    check_reachable(settings)
    checked = read_checked_releases(settings)
    releases = read_registry(settings, checked)
    try:
        info = describe(releases, args.version)
    except ArtifactError as exc:
        forged = [r for r in releases.rejected if args.version is not None and r["version"] == args.version]
        if not forged and not releases.registry.versions() and not releases.rejected:
            # A model with no release at all (a typo in --model): name the models there are, as `models list`.
            known = {str(r.get("model")) for r in checked.verified + checked.unchecked} | set(
                model_owners(settings)
            )
            what = f"has no release on {settings.topic('models')}"
            print(unknown_model("models show", settings.model.name, what, known), file=sys.stderr)
            return 1
        if not forged:
            print(f"driftline models show: {exc}", file=sys.stderr)
            return 1
        info = forged[0]
        if args.json:
            print(json.dumps(info, sort_keys=True, default=str))
        else:
            print(
                f"model      {info['model']}  version {info['version']}  UNVERIFIED ({info['rejected']}): "
                f"ignored by scorers and the trainer\nerror      {info['error']}"
            )
        return 0
    if args.version is None:
        live = trainer_status(settings)
        info["trainer"] = live
        adopt_live_counts(info, live)
    serving = read_serving(settings, settings.model.name)
    adopt_serving(info, serving)
    info["scorers"] = serving
    if args.json:
        print(json.dumps(info, sort_keys=True, default=str))
        return 0
    state = "  (current)" if info["current"] else ""
    if info["refused_by_scorers"] and not info["served_by_scorers"]:
        state = f"  ({'current release, ' if info['current'] else ''}NOT SERVED: {refused_text(info)})"
    print(f"model      {info['model']}  version {info['version']}{state}")
    print(f"reason     {info['reason']}  parent {info['parent']}  created {when(info['created_at'])} UTC")
    print(f"n_learned  {info['n_learned']}{_live_counts(info)}")
    print(f"lineage    {' <- '.join(str(v) for v in info['lineage'])}")
    size = info["size_bytes"]
    print(
        f"artifact   {info['format']}, {size if size is not None else info['artifact_ref']} bytes, "
        f"sha256 {info['sha256'][:16]}"
    )
    print(f"scorers    {_scorers_line(serving)}")
    for r in info["refused_by_scorers"]:
        print(one_line(f"refused    by {r['scorers']} scorer(s) ({r['reason']}): {str(r['message'])[:160]}"))
    if info["current"] and serving is not None:
        note = not_served_note([info, *({"version": v, "served_by_scorers": n} for v, n in _served(serving))])
        if note:
            print(f"note       {note}")
    if info.get("trainer"):
        t = info["trainer"]
        print(
            f"trainer    released v{t['served_version']} (its champion), learning {'PAUSED' if t['paused'] else 'on'}, "
            f"updated {when(t['updated_at'])} UTC"
        )
    shown = {k: v for k, v in info["metrics"].items() if not k.startswith(("guard.", "segment."))}
    print(one_line("metrics    " + ", ".join(f"{k}={v:.4g}" for k, v in sorted(shown.items()))))
    decision = info["decision"]
    if decision.get("outcome"):
        print(f"decision   {json.dumps(decision, sort_keys=True)}")
    elif decision.get("text"):  # an older release's decision in plain words
        print(one_line(f"decision   {decision['text']}"))
    return 0


def _served(serving: dict[str, Any]) -> list[tuple[int, int]]:
    return [(int(v), n) for v, n in serving["versions"].items()]


def _scorers_line(serving: dict[str, Any] | None) -> str:
    """What the scorers report serving (``streams.serving``), in words."""
    if serving is None:
        return "unknown (Redis did not answer)"
    # Scorers whose report is overdue (killed, frozen or unreachable) are counted nowhere; said so, as `status` does
    # (review37: "0 scorer(s) reported" was printed for a model whose only scorer had reported, then was killed).
    gone = serving.get("overdue") or 0
    stopped = f"; {gone} not reporting (stopped, frozen or unreachable), not counted" if gone else ""
    if not serving["versions"]:
        return f"none reports serving this model ({serving['scorers']} live scorer(s) reported{stopped})"
    return ", ".join(f"v{v} served by {n} scorer(s)" for v, n in serving["versions"].items()) + stopped


def _answer_from_audit(settings: Settings, record: dict[str, Any]) -> dict[str, Any] | None:
    """The trainer's answer as its audit chain on the ``audit`` topic records it, when Redis did not give it
    (unreachable, or restarted without the answer the trainer could not file): None if not recorded either."""
    client = redis_client(settings, timeout_s=2.0)
    try:
        client.ping()
        where = "Redis has no answer filed"
    except redis.RedisError as exc:
        where = f"Redis unreachable: {exc}"
    finally:
        client.close()
    try:
        entries = read_topic(settings, timeout=10.0).get(str(record["model"]), [])
    except Exception:
        return None
    for entry in reversed(entries):
        done = entry.get("record") if isinstance(entry, dict) and entry.get("kind") == "control" else None
        if isinstance(done, dict) and done.get("id") == record["id"]:
            outcome = str(done.get("outcome", ""))
            ok = outcome == "ok"
            message = "applied" if ok else outcome.removeprefix("refused: ")
            note = f"(answer read from the audit topic; {where})"
            return {"outcome": "ok" if ok else "refused", "message": f"{message} {note}", "source": "audit"}
    return None


def _run(args: argparse.Namespace, command: str, cmd_args: dict[str, str]) -> int:
    settings = _settings(args)
    from learners.lifecycle_control import validate_control  # imports River (seconds): only when sending

    try:
        # Validated first (a bad key is named whatever the broker's state), then the broker is checked: one line
        # naming the address in seconds, not a KafkaError after 30 s. send_command validates again.
        validate_control(command, cmd_args, settings.guard, settings.drift)
        _check_deployed(settings, check_reachable(settings))
        record = send_command(settings, command, cmd_args)
    except ConfigError as exc:
        print(f"driftline models: refused before sending: {exc}", file=sys.stderr)
        if args.json:  # still one object on stdout for a script that reads it
            refused = {"outcome": "refused", "message": f"refused before sending: {exc}", "source": "cli"}
            print(json.dumps({"sent": None, "answer": refused, "waited": False}, sort_keys=True))
        return 2
    answer = None if args.no_wait else wait_reply(settings, record["id"], args.timeout)
    if answer is None and not args.no_wait:
        answer = _answer_from_audit(settings, record)
    shown = {k: v for k, v in record.items() if k != "signature"}
    if args.json:
        print(json.dumps({"sent": shown, "answer": answer, "waited": not args.no_wait}, sort_keys=True))
    elif args.no_wait:
        print(
            f"sent {command} {cmd_args or ''} for model {record['model']!r} (id {record['id']}, key "
            f"{record['key_id']}); not waiting: see `driftline models settings` and the trainer's audit log"
        )
    elif answer is None:
        print(
            f"sent {command} {cmd_args or ''} (id {record['id']}); NO ANSWER from the trainer of "
            f"{record['model']!r} within {args.timeout:g} s: {_no_answer_hint(settings)}",
            file=sys.stderr,
        )
    else:
        verdict = "done" if answer["outcome"] == "ok" else "REFUSED"
        out = sys.stdout if answer["outcome"] == "ok" else sys.stderr
        print(f"{command} {verdict}: {answer['message']}{_known_models(settings, answer)}", file=out)
    if args.no_wait:
        return 0
    if answer is None:
        return 3
    return 0 if answer["outcome"] == "ok" else 1


def _known_models(settings: Settings, answer: dict[str, Any]) -> str:
    """For a command refused because its model is unknown (a ``--model`` typo): which models there are."""
    if answer.get("reason") != "unknown":
        return ""
    known = _models_with_a_release(settings)
    if known is None:  # only a hint: the refusal stands whatever this read does
        return ""
    others = sorted(known - {settings.model.name})
    return f"; models with a release: {', '.join(others[:20]) or 'none'}"


def _models_with_a_release(settings: Settings) -> set[str] | None:
    """The models with a release on ``models`` (read for 5 s at most), or None when it could not be read."""
    try:
        checked = read_checked_releases(settings, timeout=5.0)
    except Exception:  # a hint for a message: whatever this read does, the command's own answer stands
        return None
    return {str(r.get("model")) for r in checked.verified + checked.unchecked}


def _check_deployed(settings: Settings, topics: set[str]) -> None:
    """Refuse to send to a prefix with no ``control`` topic: a mistyped ``--topic-prefix`` created ``typo.control``
    on the cluster and waited 30 s for a trainer that could not exist (session 34, audit34)."""
    control = settings.topic("control")
    if control in topics:
        return
    others = sorted(t[: -len("control")] for t in topics if t.endswith("control") and t != control)
    found = (
        f"prefixes with a control topic there: {', '.join(others[:10])}" if others else "no prefix has one"
    )
    raise ConfigError(
        f"kafka.topic_prefix: no topic {control!r} on {settings.kafka.bootstrap} ({found}); check --topic-prefix "
        "or DRIFTLINE_TOPIC_PREFIX, or create the topics (`driftline topics create`) and start a train worker"
    )


def _no_answer_hint(settings: Settings) -> str:
    """Why no answer came: Redis, where the trainer files it, unreachable from here, or no trainer answered."""
    client = redis_client(settings, timeout_s=2.0)
    try:
        client.ping()
    except redis.RedisError as exc:
        return (
            f"cannot reach Redis at {redis_address(settings)} to read it ({type(exc).__name__}), and the audit "
            "topic has no answer either (the command was sent: `driftline audit show` lists it once applied)"
        )
    finally:
        client.close()
    # A trainer that is only late (catching up after a restart, or a commit hung on a broker fault for 40 s)
    # applies the command when it reads it: chaos32 seed 4 saw a `set` applied 4 s after this message. Sending it
    # again would apply it twice (two rollbacks go two versions back).
    return (
        "is a train worker running for this prefix? The command stays on `control`: a trainer that reads it "
        f"within model.control_max_age_s ({settings.model.control_max_age_s:g} s) still applies it; check "
        "`driftline audit show --kind control` before sending it again"
    )


def _promote(args: argparse.Namespace) -> int:
    target = args.version
    key = "candidate" if target in ("held", "challenger", "champion") else "version"
    return _run(args, "promote", {key: target})


def _rollback(args: argparse.Namespace) -> int:
    return _run(args, "rollback", {})


def _pause(args: argparse.Namespace) -> int:
    return _run(args, "pause_learning", {"discard": "true"} if args.discard else {})


def _resume(args: argparse.Namespace) -> int:
    return _run(args, "resume_learning", {})


def _set(args: argparse.Namespace) -> int:
    pairs = {}
    for item in args.assignments:
        key, sep, value = item.partition("=")
        if not sep or not key:
            print(f"driftline models set: expected KEY=VALUE, got {item!r}", file=sys.stderr)
            return 2
        if key.strip() in pairs:  # one command sets each key once: which value was meant is a guess
            print(f"driftline models set: {key.strip()} is given twice; give it once", file=sys.stderr)
            return 2
        pairs[key.strip()] = value.strip()
    return _run(args, "set", pairs)


def _live_settings(args: argparse.Namespace) -> int:
    settings = _settings(args)
    live = trainer_status(settings)
    if live is None or not live.get("settings"):
        check_redis_reachable(settings)  # "no live state" would blame the trainer for an unreachable Redis
        known = _models_with_a_release(settings)
        if known and settings.model.name not in known:
            # A --model typo asked "is a train worker running?" while one ran, serving the other models.
            what = f"has no trainer state in Redis and no release on {settings.topic('models')}"
            print(unknown_model("models settings", settings.model.name, what, known), file=sys.stderr)
            return 1
        print(
            f"driftline models settings: no live state from the trainer of {settings.model.name!r} in Redis "
            "(is a train worker running for this prefix?)",
            file=sys.stderr,
        )
        return 1
    rows = live["settings"]
    if args.json:
        print(json.dumps({"model": settings.model.name, "settings": rows}, sort_keys=True, default=str))
        return 0
    print(f"live settings of {settings.model.name!r} (trainer updated {when(live['updated_at'])} UTC)")
    # Columns as wide as their longest entry (a value such as 6.907755278982137 overran a fixed 12).
    key_width = max([32, *map(len, rows)])
    value_width = max([12, *(len(str(row["value"])) for row in rows.values())])
    for key, row in sorted(rows.items()):
        source = row["source"]
        if source == "live set":
            source += f" {when(row.get('set_at'))} UTC by {row.get('key_id') or '?'}"
        print(f"  {key:<{key_width}} {row['value']!s:<{value_width}} {source}")
    return 0


def _live_counts(info: dict[str, Any]) -> str:
    """The live count's context: the figure at release, and the labels learned in all when they differ from it."""
    if "n_learned_in_release" not in info:
        return ""
    text = f"  (live; {info['n_learned_in_release']} at release"
    if info["labels_learned"] != info["n_learned"]:
        text += (
            f"; {info['labels_learned']} labels learned in all, the lineage's count differs after a rollback"
        )
    return text + ")"
