"""Prometheus alert rules: promtool checks and unit tests, and every metric they use is documented."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import yaml

from streams.metrics import METRIC_DOCS

ROOT = Path(__file__).resolve().parents[1]
RULES = ROOT / "deploy" / "prometheus" / "rules" / "driftline.yml"
RULE_TESTS = ROOT / "deploy" / "prometheus" / "tests" / "driftline_test.yml"
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")

EXPECTED_ALERTS = {
    "DriftlineDriftAlarmRateHigh",
    "DriftlineServedAccuracyLow",
    "DriftlineNoRecentRelease",
    "DriftlineReleaseRejected",
    "DriftlineReleaseWithheld",
    "DriftlinePendingJoinsGrowing",
    "DriftlineDeadLetters",
    "DriftlineConsumerLagHigh",
    "DriftlineWorkerDown",
    "DriftlineStageRetrying",
    "DriftlineFairnessGapHigh",
}


def promtool() -> str:
    path = shutil.which("promtool")
    assert path, "promtool is missing: install Debian's `prometheus` package (make setup does)"
    return path


def run_promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([promtool(), *args], capture_output=True, text=True, timeout=120, check=False)


def alert_rules() -> list[dict]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def known_metric(name: str) -> bool:
    """True if ``name`` is a documented family or one of a histogram's series."""
    docs = {doc.name: doc.kind for doc in METRIC_DOCS}
    if name in docs:
        return True
    return any(name.endswith(s) and docs.get(name.removesuffix(s)) == "histogram" for s in HISTOGRAM_SUFFIXES)


def test_promtool_check_rules_passes() -> None:
    result = run_promtool("check", "rules", str(RULES))
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_rule_unit_tests_pass() -> None:
    result = run_promtool("test", "rules", str(RULE_TESTS))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_every_alert_is_tested_firing_and_not_firing() -> None:
    tests = yaml.safe_load(RULE_TESTS.read_text())["tests"]
    cases = [case for test in tests for case in test.get("alert_rule_test", [])]
    for rule in alert_rules():
        mine = [c for c in cases if c["alertname"] == rule["alert"]]
        assert any(c.get("exp_alerts") for c in mine), f"{rule['alert']}: no test where it fires"
        assert any(not c.get("exp_alerts") for c in mine), f"{rule['alert']}: no test where it stays quiet"


def test_required_alerts_have_severity_for_and_runbook() -> None:
    rules = {rule["alert"]: rule for rule in alert_rules()}
    assert set(rules) >= EXPECTED_ALERTS
    for name, rule in rules.items():
        assert rule["labels"]["severity"] in ("info", "warning", "critical"), name
        assert {"summary", "description", "runbook_url"} <= set(rule["annotations"]), name
        assert "#operations" in rule["annotations"]["runbook_url"], name
    # Rejected releases and refused control commands page at once; everything else must persist before it fires.
    for name, rule in rules.items():
        if name not in ("DriftlineReleaseRejected", "DriftlineControlRefused", "DriftlineJoinsLost"):
            assert "for" in rule, name


def test_rules_only_use_documented_metrics() -> None:
    for rule in alert_rules():
        for name in re.findall(r"\bdriftline_[a-z_]+", rule["expr"]):
            assert known_metric(name), f"{rule['alert']} uses undocumented metric {name}"


def test_documented_served_version_join_works_with_a_scorer_and_a_trainer(tmp_path: Path) -> None:
    """docs/metrics.md's recipe for joining driftline_model_metric to the served version must evaluate on a real
    deployment, where a scorer and a trainer (two scrape targets) both export driftline_served_model_info for the
    same (model, version): a plain `group_left` on it is a many-to-many error in Prometheus."""
    docs = (ROOT / "docs" / "metrics.md").read_text()
    match = re.search(r"Join it to the served version with\s+`([^`]+)`", docs)
    assert match, "docs/metrics.md no longer gives the served-version join"
    expr = match.group(1)
    served = 'driftline_served_model_info{{job="driftline",instance="{inst}",model="m",version="7"}}'
    rules = tmp_path / "none.yml"
    rules.write_text("groups: []\n")
    test = {
        "rule_files": [str(rules)],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [
                    {
                        "series": 'driftline_model_metric{job="driftline",instance="train:9108",model="m",'
                        'version="7",metric="rolling_accuracy"}',
                        "values": "0.9x5",
                    },
                    {"series": served.format(inst="train:9108"), "values": "1x5"},
                    {"series": served.format(inst="score:9108"), "values": "1x5"},
                ],
                "promql_expr_test": [
                    {
                        "expr": expr,
                        "eval_time": "2m",
                        "exp_samples": [
                            {
                                "labels": '{job="driftline",instance="train:9108",model="m",version="7",'
                                'metric="rolling_accuracy"}',
                                "value": 0.9,
                            }
                        ],
                    }
                ],
            }
        ],
    }
    path = tmp_path / "join_test.yml"
    path.write_text(yaml.safe_dump(test))
    result = run_promtool("test", "rules", str(path))
    assert result.returncode == 0, expr + "\n" + result.stdout + result.stderr
