"""The Grafana dashboard and its provisioning files load, and only query documented metrics."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml

from streams.metrics import METRIC_DOCS

GRAFANA = Path(__file__).resolve().parents[1] / "deploy" / "grafana"
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")


def dashboard() -> dict[str, Any]:
    return json.loads((GRAFANA / "dashboards" / "driftline.json").read_text())


def panels(dash: dict[str, Any]) -> list[dict[str, Any]]:
    found = []
    for panel in dash["panels"]:
        found.append(panel)
        found.extend(panel.get("panels", []))  # collapsed rows nest their panels
    return found


def metric_names(expr: str) -> set[str]:
    """Documented family names an expression uses (histogram series map to their family)."""
    kinds = {doc.name: doc.kind for doc in METRIC_DOCS}
    names = set()
    for raw in re.findall(r"\bdriftline_[a-z_]+", expr):
        base = raw
        for suffix in HISTOGRAM_SUFFIXES:
            if raw.endswith(suffix) and kinds.get(raw.removesuffix(suffix)) == "histogram":
                base = raw.removesuffix(suffix)
        names.add(base)
    return names


def all_exprs(dash: dict[str, Any]) -> list[str]:
    exprs = [t["expr"] for p in panels(dash) for t in p.get("targets", [])]
    exprs += [a["expr"] for a in dash["annotations"]["list"] if "expr" in a]
    return exprs


def test_every_expr_uses_documented_metrics() -> None:
    documented = {doc.name for doc in METRIC_DOCS}
    exprs = all_exprs(dashboard())
    assert exprs
    for expr in exprs:
        names = metric_names(expr)
        assert names or "up{" in expr, f"query uses no driftline metric: {expr}"
        for name in names:
            assert name in documented, f"undocumented metric {name} in {expr}"


def test_dashboard_covers_what_operators_watch() -> None:
    used = set().union(*(metric_names(e) for e in all_exprs(dashboard())))
    for name in (
        "driftline_events_total",
        "driftline_end_to_end_latency_seconds",
        "driftline_served_model_version",
        "driftline_model_metric",
        "driftline_guard_decisions_total",
        "driftline_pending_joins",
        "driftline_label_delay_seconds",
        "driftline_deadletters_total",
        "driftline_consumer_lag",
    ):
        assert name in used, f"no panel shows {name}"
    annotations = " ".join(a.get("expr", "") for a in dashboard()["annotations"]["list"])
    assert "driftline_drift_alarms_total" in annotations
    assert "driftline_releases_total" in annotations


def test_panels_are_well_formed() -> None:
    dash = dashboard()
    assert dash["uid"] and dash["title"]
    ids = [p["id"] for p in panels(dash)]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for panel in panels(dash):
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24, panel["title"]
        if panel["type"] != "row":
            assert panel["targets"], panel["title"]
            ref_ids = [t["refId"] for t in panel["targets"]]
            assert len(ref_ids) == len(set(ref_ids)), panel["title"]
    variables = {v["name"] for v in dash["templating"]["list"]}
    for expr in all_exprs(dash):
        for var in re.findall(r"\$(\w+)", expr):
            assert var in variables or var.startswith("__"), f"unknown variable ${var} in {expr}"


def test_provisioning_points_at_compose_prometheus_and_dashboards() -> None:
    sources = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "prometheus.yml").read_text())
    (source,) = sources["datasources"]
    assert source["type"] == "prometheus"
    assert source["url"] == "http://prometheus:9090"
    var = next(v for v in dashboard()["templating"]["list"] if v["name"] == "datasource")
    assert var["current"]["value"] == source["uid"]
    providers = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "driftline.yml").read_text())
    (provider,) = providers["providers"]
    assert provider["type"] == "file" and provider["options"]["path"]


def test_every_expr_is_valid_promql(tmp_path: Path) -> None:
    # promtool parses recording rules, so each query (with Grafana's variables filled in) becomes one.
    promtool = shutil.which("promtool")
    assert promtool, "promtool is missing: install Debian's `prometheus` package (make setup does)"
    substitutions = {"$__rate_interval": "1m", "$model": ".*"}
    rules = []
    for i, expr in enumerate(all_exprs(dashboard())):
        for var, value in substitutions.items():
            expr = expr.replace(var, value)
        rules.append({"record": f"dashboard:query_{i}", "expr": expr})
    path = tmp_path / "dashboard_rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    cmd = [promtool, "check", "rules", str(path)]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
