"""A release's guard decision has one shape in every ``--json`` view: an object.

The signed ``decision`` field is text: the guard's decision as JSON, empty on a first release, and in older
registry records plain words. ``models list|show --json`` printed that text as a JSON *string* while ``models
diff --json`` gave an object (or, for plain words, a string again), so a script reading ``decision["outcome"]``
broke on one view or another. Now every view gives the guard's object, ``{"text": <words>}`` for plain words and
``{}`` for none (:mod:`streams.decisions`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from connectors.topics import ensure_topics
from driftline.config import LearnerSpec
from learners.artifacts import build_release
from learners.specs import build_learner
from streams.decisions import decision_object
from tests.fault_helpers import make_events
from tests.pipeline_helpers import SIGNING_KEY, Pipeline

GUARD = {"outcome": "promote", "reason": "challenger", "text": "challenger better", "evidence": {"n": 40.0}}
WORDS = "rollback: v1 worse than v2 on the last 200 labels"


def test_every_kind_of_recorded_decision_reads_as_an_object() -> None:
    assert decision_object(json.dumps(GUARD)) == GUARD
    assert decision_object(WORDS) == {"text": WORDS}
    assert decision_object("") == {} and decision_object(None) == {}
    # JSON that is not an object is words to a reader, not a decision's fields.
    assert decision_object("42") == {"text": "42"} and decision_object('"x"') == {"text": '"x"'}


@pytest.mark.parametrize("raw", [json.dumps(GUARD), WORDS, "", "42", '"x"', "[1]"])
def test_the_console_lineage_reads_a_decision_as_the_cli_does(raw: str) -> None:
    # review37: the console gave {} for JSON that is not an object ('42', '"x"') where the CLI gives its words.
    from streams.console.sources import _decision

    assert _decision({"decision": raw}) == decision_object(raw)


def _release(version: int, decision: str) -> dict[str, Any]:
    model = build_learner(LearnerSpec(), "classification", 0)
    for e in make_events(60, seed=version):
        model.learn_one(e.features, e.label)
    return build_release(
        model, name="default", version=version, parent=version - 1 if version > 1 else None,
        reason="manual", metrics={"accuracy": 0.6}, key=SIGNING_KEY.encode(), n_learned=60, decision=decision,
    )  # fmt: skip


@pytest.mark.kafka
def test_models_list_show_diff_and_status_give_the_decision_as_an_object(
    prefix: str, redis_url: str, tmp_path: Path
) -> None:
    pipeline = Pipeline(prefix, tmp_path, redis_url)
    ensure_topics(pipeline.settings())
    with pipeline.producer() as producer:
        for version, decision in ((1, ""), (2, WORDS), (3, json.dumps(GUARD))):
            producer.send("models", "ModelRelease", _release(version, decision), "default")
    expected = {1: {}, 2: {"text": WORDS}, 3: GUARD}

    rows = pipeline.cli_json("models", "list", "--json")
    assert {r["version"]: r["decision"] for r in rows} == expected
    for version, decision in expected.items():
        assert pipeline.cli_json("models", "show", str(version), "--json")[0]["decision"] == decision
    assert pipeline.cli_json("models", "show", "--json")[0]["decision"] == GUARD
    diff = pipeline.cli_json("models", "diff", "1", "2", "--json")[0]
    assert (diff["a"]["decision"], diff["b"]["decision"]) == ({}, {"text": WORDS})
    assert pipeline.cli_json("models", "diff", "2", "3", "--json")[0]["b"]["decision"] == GUARD
    status = json.loads(pipeline.cli("status", "--json").stdout)
    latest = next(m for m in status["models"] if m["model"] == "default")["latest_release"]
    assert latest["decision"] == {k: GUARD[k] for k in ("outcome", "reason", "text")}

    # The text views say the words of an older decision instead of printing a JSON string.
    assert f"decision   {WORDS}" in pipeline.cli("models", "show", "2").stdout
    assert f"decision for v2: {WORDS}" in pipeline.cli("models", "diff", "1", "2").stdout
