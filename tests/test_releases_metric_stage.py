"""``driftline_releases_total`` counts releases a trainer published and releases a scorer loaded; a ``stage`` label
tells them apart (an outside check of issue 4: in a ``--role all`` worker both went into one series, so one release
counted twice, and the dashboard's "released" panel summed the trainer's count with every scorer's)."""

from __future__ import annotations

import json
import re
from pathlib import Path

from streams.metrics import build_metrics

DASHBOARD = Path(__file__).resolve().parents[1] / "deploy" / "grafana" / "dashboards" / "driftline.json"


def test_a_release_published_and_loaded_in_one_process_counts_once_per_stage() -> None:
    m = build_metrics()  # one registry, as in `driftline worker --role all`
    m.observe_release("m", "incremental", 1_000, stage="train")  # the trainer published it
    m.observe_release("m", "incremental", 1_000, stage="score")  # the scorer loaded it
    get = m.registry.get_sample_value
    assert get("driftline_releases_total", {"model": "m", "reason": "incremental", "stage": "train"}) == 1
    assert get("driftline_releases_total", {"model": "m", "reason": "incremental", "stage": "score"}) == 1


def test_the_dashboard_counts_published_releases_only() -> None:
    text = DASHBOARD.read_text()
    exprs = re.findall(r'"expr": "((?:[^"\\]|\\.)*driftline_releases_total(?:[^"\\]|\\.)*)"', text)
    assert exprs
    for expr in exprs:
        selector = json.loads(f'"{expr}"').split("driftline_releases_total", 1)[1]
        assert 'stage="train"' in selector.split("}", 1)[0], expr
