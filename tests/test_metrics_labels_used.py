"""The alert rules and the Grafana dashboard use only labels their metrics carry: in selectors (`{model="m"}`),
groupings (`by (model, reason)`), alert templates (`$labels.reason`) and legends (`{{detector}}`). The metric names
are checked by test_metrics_rules.py and test_metrics_dashboard.py; a label that no longer exists makes a rule
never fire or a panel show one merged series, with no error anywhere (session 34 audit). No broker."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from streams.metrics import METRIC_DOCS

ROOT = Path(__file__).resolve().parents[1]
RULES = ROOT / "deploy" / "prometheus" / "rules" / "driftline.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "dashboards" / "driftline.json"
# Labels Prometheus adds to every scraped series (prometheus.yml: job, instance, and the compose service).
TARGET_LABELS = {"job", "instance", "service"}


def _labels() -> dict[str, set[str]]:
    out: dict[str, set[str]] = {"up": set()}
    for doc in METRIC_DOCS:
        out[doc.name] = set(doc.labels)
        if doc.kind == "histogram":
            for suffix in ("_sum", "_count"):
                out[doc.name + suffix] = set(doc.labels)
            out[doc.name + "_bucket"] = {*doc.labels, "le"}
    return out


def _uses() -> list[tuple[str, str, str]]:
    """(where, expr, text whose templates name labels) of every rule and every dashboard query."""
    found = []
    for group in yaml.safe_load(RULES.read_text())["groups"]:
        for rule in group["rules"]:
            name = rule.get("alert") or rule.get("record")
            found.append((f"rule {name}", rule["expr"], json.dumps(rule.get("annotations", {}))))

    def walk(node: Any, title: str) -> None:
        if isinstance(node, dict):
            title = node.get("title", title)
            if isinstance(node.get("expr"), str):
                found.append((f"panel {title!r}", node["expr"], str(node.get("legendFormat", ""))))
            for value in node.values():
                walk(value, title)
        elif isinstance(node, list):
            for value in node:
                walk(value, title)

    walk(json.loads(DASHBOARD.read_text()), "")
    return found


USES = _uses()


def test_the_walk_finds_the_rules_and_the_panels() -> None:
    assert sum(w.startswith("rule ") for w, _, _ in USES) >= 10
    assert sum(w.startswith("panel ") for w, _, _ in USES) >= 20


@pytest.mark.parametrize(("where", "expr", "templates"), USES, ids=[w for w, _, _ in USES])
def test_every_label_an_expression_uses_is_on_its_metrics(where: str, expr: str, templates: str) -> None:
    labels = _labels()
    names = re.findall(r"\b(driftline_[a-z_]+|up)\s*[{(\[]", expr) or re.findall(r"\bdriftline_[a-z_]+", expr)
    carried = set(TARGET_LABELS)
    for name in names:
        assert name in labels, f"{where}: unknown metric {name} in {expr}"
        carried |= labels[name]
    for name, selector in re.findall(r"\b(driftline_[a-z_]+)\s*\{([^}]*)\}", expr):
        for label in re.findall(r"(\w+)\s*(?:=~|!~|!=|=)", selector):
            assert label in labels[name] | TARGET_LABELS, f"{where}: {name} has no label {label!r}: {expr}"
    for group in re.findall(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)", expr):
        for label in filter(None, (part.strip() for part in group.split(","))):
            assert label in carried, f"{where}: no metric of the expression has label {label!r}: {expr}"
    for label in re.findall(r"\$labels\.(\w+)", templates) + re.findall(r"\{\{\s*(\w+)\s*\}\}", templates):
        assert label in carried, f"{where}: template names label {label!r} the expression lacks: {expr}"
