"""``driftline explain ID [--json]``: why the served model predicted what it did for one event."""

from __future__ import annotations

import argparse
import json
import time
from datetime import UTC, datetime
from typing import Any

from connectors.kafka_client import check_reachable
from driftline.util import one_line, terminal_safe
from streams.cli import positive_seconds, settings_from_args, whole_number


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "explain",
        help="explain one served prediction by its event id (per-feature contributions)",
        description="Finds the prediction on the predictions topic and prints its per-feature contributions: "
        "recorded at scoring time when model.explain is on, else recomputed from the verified release that "
        "served it. When several models answered the same id, the global --model chooses (default: the "
        "configured model if it answered it, else the newest answer) and the others are named.",
    )
    p.add_argument("id", help="the FeatureEvent id")
    p.add_argument(
        "--since", type=float, default=1440.0, metavar="MINUTES", help="search back this far (default: 1440)"
    )
    p.add_argument(
        "--timeout",
        type=positive_seconds,
        default=30.0,
        help="give up the search after this many seconds (default: 30)",
    )
    p.add_argument("--top", type=whole_number, default=20, help="features to print (text output; default 20)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_explain)


def _explain(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    check_reachable(settings, timeout=min(5.0, args.timeout))  # --timeout bounds the whole command
    since = int((time.time() - args.since * 60) * 1000) if args.since > 0 else None
    from streams.explanations import explain_prediction  # loads River: not for --help

    result = explain_prediction(
        settings, args.id, since_ms=since, timeout=args.timeout, model=getattr(args, "model", None)
    )
    if args.json:
        print(json.dumps(result, sort_keys=True, default=str))
        return 0
    print(terminal_safe(render(result, args.top)))
    return 0


def render(r: dict[str, Any], top: int = 20) -> str:
    """The explanation as text, each line one line even when the id, a feature name or a class (chosen by whoever
    wrote the event and the label) holds a newline: :func:`driftline.util.one_line`."""
    proba = r.get("proba") or {}
    shown = ", ".join(f"{k}={v:.3f}" for k, v in sorted(proba.items(), key=lambda kv: -kv[1])[:3])
    lines = [
        f"prediction {r['id']}: {r['model']} v{r['version']} predicted {r['prediction']!r}"
        + (f" ({shown})" if shown else "")
        + f", event time {_when(r.get('ts'))}",
        f"method: {r['method']} ({r['source']})",
    ]
    if r.get("search_complete") is False:
        lines.append(
            "note: the search gave up before the end of predictions (raise --timeout): a newer answer may exist"
        )
    for other in r.get("also_answered_by") or []:
        lines.append(
            f"also answered by {other['model']} v{other['version']} "
            f"(driftline --model {other['model']} explain {r['id']})"
        )
    contrib = r.get("contributions") or {}
    if not contrib:
        lines.append("  (no explanation for this kind of model)")
    features = r.get("features") or {}
    for name, value in sorted(contrib.items(), key=lambda kv: -abs(kv[1]))[:top]:
        x = "" if name.startswith("_") else f"  ({_value_of(name, features)})"
        lines.append(f"  {name:<24} {value:+.4f}{x}")
    return "\n".join(one_line(line) for line in lines)


def _value_of(name: str, features: dict[str, Any]) -> str:
    """What the event had for a contribution's feature: its value, or for a one-hot indicator (``color=red``) the
    value of the string feature it comes from; for an interaction (``a*b``) the values it multiplies."""
    if name in features:
        return f"value {features[name]!r}"
    base = name.rpartition("=")[0]
    if base in features:
        return f"{base}={features[base]!r}"
    if "*" in name:  # an interaction (``a*b``): the values it multiplies, when the event had each
        parts = [_value_of(part, features) for part in name.split("*")]
        if "absent" not in parts:
            return "value " + " * ".join(p.removeprefix("value ") for p in parts)
    return "absent"


def _when(ms: Any) -> str:
    try:
        return datetime.fromtimestamp(int(ms) / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")
    except (TypeError, ValueError, OverflowError):
        return "-"
