"""A scorer killed with SIGKILL stops counting as serving once its report is overdue (three heartbeats), well
before its report is dropped (60 s): ``status`` (text and ``--json``, which the console's overview mirrors) and
``models list`` then count only the live scorers, and name the killed one as stopped. Until session 37 a killed
scorer and its version counted for the whole 60 s (a model every scorer of which was dead still read "serving v3
(2 scorers)")."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from streams.serving import OVERDUE_S, STALE_S
from tests.fault_helpers import kill9, running_all
from tests.pipeline_helpers import Pipeline

pytestmark = [pytest.mark.kafka]


@pytest.fixture
def pipeline(prefix: str, redis_url: str, tmp_path: Path) -> Iterator[Pipeline]:
    p = Pipeline(prefix, tmp_path, redis_url)
    with running_all(p):
        yield p


def _scorers(pipeline: Pipeline) -> dict[str, Any]:
    status = json.loads(pipeline.cli("status", "--json", check=False).stdout)
    model = next(m for m in status["models"] if m["model"] == "default")
    return {**(model["scorers"] or {}), "served_version_from": model["served_version_from"]}


def test_a_killed_scorer_is_shown_stopped_once_its_heartbeat_is_overdue(pipeline: Pipeline) -> None:
    pipeline.start("train", "score", "score")
    both = pipeline.wait_until(
        "two scorers serving v1",
        lambda: (s := _scorers(pipeline))["versions"].get("1") == 2 and s,
        timeout=90,
    )
    assert not both.get("overdue") and not any(e.get("overdue") for e in both["by_scorer"].values())
    victim = next(w for w in pipeline.workers if w.role == "score")
    assert victim.proc is not None
    killed = f"{socket.gethostname()}-{victim.proc.pid}"
    assert killed in both["by_scorer"], both
    kill9(pipeline, victim)

    def overdue() -> dict[str, Any] | None:
        s = _scorers(pipeline)
        return s if s["by_scorer"].get(killed, {}).get("overdue") else None

    # Well before STALE_S (the report's own expiry): the old code counted it until then, so this wait fails there.
    after = pipeline.wait_until("the killed scorer shown overdue", overdue, timeout=STALE_S - 10)
    entry = after["by_scorer"][killed]
    assert OVERDUE_S <= entry["age_s"] < STALE_S and entry["served"] == 1
    assert after["scorers"] == 1 and after["overdue"] == 1 and after["versions"] == {"1": 1}
    assert after["served_version"] == 1 and after["served_version_from"] == "scorers"
    live = [k for k, e in after["by_scorer"].items() if not e["overdue"]]
    assert len(live) == 1 and live[0] != killed

    text = pipeline.cli("status").stdout
    assert f"scorer {killed} NOT REPORTING for" in text and "not counted as serving" in text, text
    assert "v1 (1 scorer)" in text, text
    current = next(r for r in pipeline.cli_json("models", "list", "--json") if r["current"])
    assert current["served_by_scorers"] == 1, current
