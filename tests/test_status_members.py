"""``driftline status`` with several scorers: every worker is listed by a name of its own, with the partitions it
is assigned, and that agrees with each worker's own /metrics (``driftline_consumer_lag`` names the partitions
it reads). Before session 35 every score and join consumer was called ``driftline``: status showed ``2
member(s)`` and no way to tell which worker read what."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from streams.processes import WorkerProcess
from tests.pipeline_helpers import Pipeline, running

EVENTS = 200


@pytest.fixture
def pipeline(prefix: str, redis_url: str, tmp_path: Path) -> Pipeline:
    return Pipeline(prefix, tmp_path, redis_url)


def _metrics_partitions(worker: WorkerProcess, topic: str) -> list[int]:
    text = worker.metrics_text()
    found = re.findall(r'driftline_consumer_lag\{[^}]*partition="(\d+)",topic="([^"]+)"', text)
    return sorted(int(p) for p, t in found if t == topic)


def _score_group(pipeline: Pipeline) -> dict[str, Any]:
    out = pipeline.cli("status", "--json").stdout
    status = json.loads(out)
    return next(g for g in status["workers"] if g["group"].endswith("-score"))


@pytest.mark.kafka
@pytest.mark.slow
def test_status_names_each_scorer_with_its_partitions(pipeline: Pipeline) -> None:
    settings = pipeline.settings()
    features = settings.topic("features")
    with running(pipeline):
        scorers = pipeline.start("score", "score")
        pipeline.start("join", "train")
        # A scorer names a partition in /metrics once it has read from it: events on every partition; their
        # labels make the trainer release models for the scorers to serve.
        pipeline.produce_synthetic("sea", EVENTS)
        pipeline.wait_learned(EVENTS, timeout=120)

        def settled() -> dict[str, Any] | None:
            group = _score_group(pipeline)
            per_worker = [_metrics_partitions(w, features) for w in scorers]
            mine = sorted(p for ps in per_worker for p in ps)
            if (
                len(group["members"]) == 2
                and all(per_worker)
                and mine == list(range(settings.kafka.partitions))
            ):
                return group
            return None

        group = pipeline.wait_until("two scorers, each with partitions in its /metrics", settled, timeout=120)
        # A status taken after the metrics settled can race a rebalance; the assertions below compare the two.
        assert len(set(group["members"])) == 2, f"scorers not told apart: {group['members']}"
        named_as = f"{settings.kafka.client_id}-score-"
        for worker in scorers:
            named = [m for m in group["members"] if m.startswith(named_as) and f"-{worker.pid}@" in m]
            assert len(named) == 1, f"no member named after scorer pid {worker.pid}: {group['members']}"
            assigned = group["assignments"][named[0]].get(features, [])
            assert assigned == _metrics_partitions(worker, features), (named[0], group["assignments"])

        # Every label learned: the last release is out; once both scorers serve it, status names each with it.
        last = pipeline.releases_in_order()[-1]["version"]
        pipeline.wait_until(
            f"both scorers serving v{last}",
            lambda: all(pipeline.metric(w, "driftline_served_model_version") == last for w in scorers),
            timeout=60,
        )
        status = json.loads(pipeline.cli("status", "--json").stdout)
        model = next(m for m in status["models"] if m["model"] == settings.model.name)
        reported = model["scorers"]["by_scorer"]
        for worker in scorers:
            ids = [k for k in reported if k.endswith(f"-{worker.pid}")]
            assert len(ids) == 1, f"scorer pid {worker.pid} not in the serving report: {reported}"
            assert reported[ids[0]]["served"] == last, reported

        text = pipeline.cli("status").stdout
        for worker in scorers:
            line = next(ln for ln in text.splitlines() if f"-{worker.pid}@" in ln)
            assert "features " + ",".join(map(str, _metrics_partitions(worker, features))) in line, text
            assert f"serving {settings.model.name} v{last}" in line, text


def test_a_silent_scorer_and_workers_of_one_name_are_shown_as_such() -> None:
    """A scorer killed -9 keeps its report until it expires: once overdue, its line says how long it has been
    silent (a live one, however late within the heartbeat window, says nothing; session 37). Workers of
    one name (releases before session 35 named every score consumer ``driftline``) are one line, counted."""
    from streams.commands.status import _member_lines, _served_by_scorer

    killed, live = (
        {"served": 3, "age_s": 46.2, "overdue": True},
        {"served": 5, "age_s": 26.0, "overdue": False},
    )
    status = {
        "models": [
            {"model": "default", "scorers": {"by_scorer": {"vm-7": killed, "vm-8": live}}},
            {"model": "alpha", "scorers": {"by_scorer": {"vm-8": {"served": None, "age_s": 2.0}}}},
        ]
    }
    members = ["dl-score-vm-7@h", "dl-score-vm-8@h", "driftline@h", "driftline@h"]
    assignments = {
        "dl-score-vm-7@h": {"p.features": [0, 1]},
        "dl-score-vm-8@h": {},
        "driftline@h": {"p.features": [2, 3]},
    }
    group = {"members": members, "assignments": assignments}
    lines = _member_lines(group, "p.", _served_by_scorer(status))
    assert len(lines) == 3, lines
    assert "features 0,1" in lines[0] and lines[0].endswith("serving default v3 (silent 46s)"), lines
    assert "no partition" in lines[1] and lines[1].endswith("serving default v5, alpha -"), lines
    assert "driftline@h (x2)" in lines[2] and "features 2,3" in lines[2] and "serving" not in lines[2], lines


def test_models_show_says_a_scorer_stopped_reporting_not_that_none_reported() -> None:
    """``models show``'s scorers line for a model whose only scorer reported, then was killed (review37): it said
    "none reports serving this model (0 scorer(s) reported)", as if no scorer had ever run; ``status`` named it
    STOPPED. Now it says how many stopped reporting, not counted."""
    from streams.commands.models import _scorers_line

    none_live = {"scorers": 0, "overdue": 1, "versions": {}, "served_version": None, "refused": []}
    line = _scorers_line(none_live)
    stopped = "1 not reporting (stopped, frozen or unreachable), not counted"
    assert line == f"none reports serving this model (0 live scorer(s) reported; {stopped})", line
    one_live = {"scorers": 1, "overdue": 2, "versions": {"1": 1}, "served_version": 1, "refused": []}
    assert _scorers_line(one_live) == (
        "v1 served by 1 scorer(s); 2 not reporting (stopped, frozen or unreachable), not counted"
    )
    all_live = {**one_live, "overdue": 0}
    assert _scorers_line(all_live) == "v1 served by 1 scorer(s)"


def test_status_does_not_guess_why_a_scorer_stopped_reporting() -> None:
    """A scorer frozen with SIGSTOP was shown "STOPPED reporting ... (killed?)" (first41): from Redis a killed, a
    frozen and a cut-off scorer look the same, so the line names all three and what to check, not a guess."""
    from streams.commands.status import _overdue

    model = {"scorers": {"by_scorer": {"vm-14249": {"overdue": True, "age_s": 32.4, "served": 15}}}}
    (line,) = _overdue(model)
    assert line == (
        "    scorer vm-14249 NOT REPORTING for 32 s (it served v15): not counted as serving; stopped, frozen or "
        "unreachable: check that process on its host"
    ), line
    assert "killed" not in line
