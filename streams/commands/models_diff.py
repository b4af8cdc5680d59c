"""``driftline models diff A B``: what changed from version A to version B (registered by ``models``)."""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime
from typing import Any

from connectors.kafka_client import check_reachable
from driftline.util import one_line
from streams.cli import settings_from_args, version_number


def register_diff(msub: argparse._SubParsersAction) -> None:
    d = msub.add_parser(
        "diff",
        help="what changed from version A to B: largest weight/importance changes, metrics, data range, guard",
    )
    d.add_argument("a", type=version_number, help="the older version")
    d.add_argument("b", type=version_number, help="the newer version")
    d.add_argument("--top", type=int, default=10, help="how many feature changes to list (default 10)")
    d.add_argument("--json", action="store_true")
    # As `models ... --model`: SUPPRESS, so given here it sets the same `model` as the global --model.
    d.add_argument(
        "--model", default=argparse.SUPPRESS, metavar="NAME", help="one model (default: model.name)"
    )
    d.set_defaults(func=_diff)


def _diff(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    check_reachable(settings)
    from streams.model_diff import diff_from_topic  # loads River: only when asked

    diff = diff_from_topic(settings, args.a, args.b, args.top)
    if args.json:
        print(json.dumps(diff, sort_keys=True, default=str))
        return 0
    print(render(diff))
    return 0


def render(diff: dict[str, Any]) -> str:
    a, b, w = diff["a"], diff["b"], diff["weights"]
    lines = [f"{diff['model']}: v{a['version']} -> v{b['version']}"]
    for side in (a, b):
        parent = side["parent"] if side["parent"] is not None else "-"
        lines.append(
            f"  v{side['version']}: {side['reason']}, parent {parent}, created {_when(side['created_at'])}, "
            f"n_learned {side['n_learned']}, learned from {_range(side['data_range'], side.get('data_range_from'))}"
        )
    lines.append(
        f"largest changes ({w['method']}{', ' + w['unit'] if w['unit'] else ''}; {w['n_features']} features):"
    )
    if not w["top"]:
        lines.append("  (no per-feature weights for this kind of model)")
    for r in w["top"]:
        lines.append(f"  {r['feature']:<24} {r['before']:>12.4g} -> {r['after']:>12.4g}  ({r['delta']:+.4g})")
    lines.append("metrics:")
    for m in diff["metrics"]:
        delta = f"({m['delta']:+.4g})" if m["delta"] is not None else ""
        lines.append(f"  {m['metric']:<32} {_num(m['a']):>12} -> {_num(m['b']):>12}  {delta}")
    decision = b["decision"]
    if isinstance(decision, dict) and decision.get("outcome"):
        lines.append(
            f"guard decision for v{b['version']}: {decision.get('outcome')} ({decision.get('reason')})"
        )
        if decision.get("text"):
            lines.append(f"  {decision['text']}")
        evidence = decision.get("evidence") or {}
        if evidence:
            lines.append("  evidence: " + ", ".join(f"{k}={_num(v)}" for k, v in sorted(evidence.items())))
    elif isinstance(decision, dict) and decision.get("text"):  # an older release's decision in plain words
        lines.append(f"decision for v{b['version']}: {decision['text']}")
    # Feature names come from the events: an escape sequence or a newline in one stays shown, on its line.
    return "\n".join(one_line(line) for line in lines)


def _num(v: Any) -> str:
    return "-" if v is None else f"{v:.4g}"


def _range(r: dict[str, int], restored_from: int | None = None) -> str:
    if not r:
        return "nothing yet"
    text = f"examples {r.get('first_index', '?')}..{r.get('last_index', '?')}"
    if restored_from is not None:
        text += f" (restored from v{restored_from})"
    if "first_ts" in r:
        text += f" (event time {_when(r['first_ts'])} .. {_when(r.get('last_ts'))})"
    return text


def _when(ms: Any) -> str:
    try:
        return datetime.fromtimestamp(int(ms) / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")
    except (TypeError, ValueError, OverflowError):
        return "-"
