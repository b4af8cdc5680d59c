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
    "DriftlinePendingJoinsGrowing",
    "DriftlineDeadLetters",
    "DriftlineConsumerLagHigh",
    "DriftlineWorkerDown",
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
