"""ModelRegistry: current champion, lineage, describe, idempotent and verified adds."""

from __future__ import annotations

import json
from typing import Any

import pytest

from driftline.errors import ArtifactError, SecurityError
from learners.artifacts import ArtifactStore, build_release
from learners.registry import ModelRegistry

KEY = b"registry-key"


def _rel(
    version: int, parent: int | None, reason: str = "incremental", decision: str = "", **kw: Any
) -> dict:
    return build_release(
        {"weights": [version] * 3}, name="churn", version=version, parent=parent, reason=reason,
        metrics={"accuracy": 0.5 + version / 100}, key=KEY, n_learned=100 * version,
        data_range={"first": 0, "last": 100 * version - 1}, decision=decision,
        created_at=1000 + version, **kw,
    )  # fmt: skip


@pytest.fixture
def registry() -> ModelRegistry:
    reg = ModelRegistry("churn", key=KEY)
    # 1 -> 2 -> 3 (champion line); 4 is a challenger held for approval; 5 rolls back to 2's weights.
    for release in (
        _rel(1, None, "initial"),
        _rel(2, 1),
        _rel(3, 2),
        _rel(4, None, "challenger", decision="held: disagreement 0.62 > 0.5"),
        _rel(5, 2, "rollback", decision="rollback: v3 worse in probation (p=0.003)"),
    ):
        reg.add(release)
    return reg


def test_versions_and_current_skip_held_candidates(registry: ModelRegistry) -> None:
    assert registry.versions() == [1, 2, 3, 4, 5]
    current = registry.current()
    assert current is not None and current["version"] == 5
    reg = ModelRegistry()
    reg.add(_rel(1, None, "initial"))
    reg.add(_rel(2, None, "challenger", decision="held: needs approval"))
    reg.add(_rel(3, None, "challenger", decision="rejected: worse on reference set"))
    assert reg.model == "churn" and reg.current()["version"] == 1  # type: ignore[index]
    assert ModelRegistry("empty").current() is None


def test_lineage_follows_parents_newest_first(registry: ModelRegistry) -> None:
    assert [r["version"] for r in registry.lineage(3)] == [3, 2, 1]
    assert [r["version"] for r in registry.lineage(5)] == [5, 2, 1]
    assert [r["version"] for r in registry.lineage(4)] == [4]
    with pytest.raises(ArtifactError, match="has no version 9"):
        registry.lineage(9)


def test_lineage_stops_where_compaction_removed_a_parent() -> None:
    reg = ModelRegistry("churn")
    reg.add(_rel(7, 6))
    reg.add(_rel(8, 7))
    assert [r["version"] for r in reg.lineage(8)] == [8, 7]


def test_describe_is_json_ready_and_complete(registry: ModelRegistry) -> None:
    info = registry.describe()
    json.dumps(info)  # no bytes, nothing exotic
    assert info["version"] == 5 and info["current"] is True
    assert info["parent"] == 2 and info["reason"] == "rollback"
    assert info["decision"].startswith("rollback: v3 worse")
    assert info["lineage"] == [5, 2, 1]
    assert info["n_learned"] == 500 and info["metrics"]["n_learned"] == 500.0
    assert info["data_range"] == {"first": 0, "last": 499}
    assert set(info["libraries"]) == {"python", "river", "sklearn", "numpy"}
    assert info["size_bytes"] == len(registry.get(5)["artifact"]) and info["artifact_ref"] is None
    old = registry.describe(3)
    assert old["current"] is False and old["lineage"] == [3, 2, 1]
    with pytest.raises(ArtifactError, match="has no current release"):
        ModelRegistry("empty").describe()


def test_describe_by_reference_release(tmp_path: Any) -> None:
    reg = ModelRegistry("churn")
    reg.add(_rel(1, None, "initial", max_inline_bytes=10, store=ArtifactStore(tmp_path)))
    info = reg.describe(1)
    assert info["size_bytes"] is None and info["artifact_ref"].startswith("file://")


def test_adding_the_same_release_twice_is_a_no_op(registry: ModelRegistry) -> None:
    registry.add(_rel(3, 2))
    assert len(registry) == 5 and 3 in registry


def test_conflicting_release_for_a_known_version_is_refused(registry: ModelRegistry) -> None:
    with pytest.raises(SecurityError, match="version 3 already registered with another signature"):
        registry.add(_rel(3, 1))


def test_tampered_release_is_not_registered(registry: ModelRegistry) -> None:
    forged = dict(_rel(6, 5), metrics={"accuracy": 0.99, "n_learned": 600.0})
    with pytest.raises(SecurityError, match="field 'metrics'"):
        registry.add(forged)
    assert 6 not in registry and registry.current()["version"] == 5  # type: ignore[index]


def test_release_of_another_model_is_refused(registry: ModelRegistry) -> None:
    other = build_release(
        {}, name="fraud", version=1, parent=None, reason="initial", metrics={}, key=KEY, n_learned=0
    )
    with pytest.raises(ArtifactError, match="release of model 'fraud' added to the registry of 'churn'"):
        registry.add(other)
    with pytest.raises(ArtifactError, match="needs a string 'model' and an int 'version'"):
        registry.add({"model": "churn", "version": "7"})
