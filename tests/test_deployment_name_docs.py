"""``model.name`` names a deployment's score and join consumer groups and its one join store, not only the default
model: the README and the metric help say so (an outside check of issue 4: restarting the workers with another
``DRIFTLINE_MODEL`` re-read `features` and `labels` from the earliest retained offset under new groups, answering
every retained event again, and the join metrics of every model carry that one name)."""

from __future__ import annotations

from pathlib import Path

from driftline.settings import load_settings
from streams.app import stage_group
from streams.join import join_namespace
from streams.metrics import METRIC_DOCS

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def test_readme_names_the_groups_and_the_join_store_by_model_name() -> None:
    settings = load_settings(environ={"DRIFTLINE_MODEL": "MODELNAME", "DRIFTLINE_TOPIC_PREFIX": "PREFIX."})
    pattern = {
        stage_group(settings, "score"): "driftline-<prefix><model.name>-score",
        stage_group(settings, "join"): "driftline-<prefix><model.name>-join",
        join_namespace(settings): "<redis.key_prefix>:<prefix><model.name>",
    }
    for actual, documented in pattern.items():
        assert actual == documented.replace("<prefix>", "PREFIX.").replace(
            "<model.name>", "MODELNAME"
        ).replace("<redis.key_prefix>", settings.redis.key_prefix)
        assert f"`{documented}`" in README, documented


def test_join_metrics_say_which_model_they_name() -> None:
    docs = {d.name: d.help for d in METRIC_DOCS}
    assert "model.name" in docs["driftline_pending_joins"]
    assert "model.name" in docs["driftline_joins_total"]
