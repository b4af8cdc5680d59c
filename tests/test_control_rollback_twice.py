"""A second ``driftline models rollback`` goes one version further back (found from outside).

After a rollback to v9 (released as v11, parent 9), a second rollback answered "rolled back to v9 (released as
v12)": it restored the version already serving, again and again, while saying it had rolled back. A release that
restores another (``restored_from``) serves that version's model, so rolling it back restores that version's parent.
A rollback release also carries the data range of the version it restores (it had none: `models diff` fell back to
reading the restored release, and said nothing when that one was not retained).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.pipeline_helpers import running
from tests.test_pipeline_control import make_lr, send

pytestmark = pytest.mark.kafka


def _span(release: dict[str, Any]) -> dict[str, int]:
    """The data range in the release's signed header."""
    return dict(json.loads(release["header"])["data_range"])


def test_a_second_rollback_restores_the_version_before_the_restored_one(
    prefix: str, redis_url: str, tmp_path: Path
) -> None:
    pipeline = make_lr(prefix, redis_url, tmp_path)
    with running(pipeline):
        pipeline.start("all")
        sent = 0
        while len(pipeline.releases()) < 4 and sent < 2500:
            send(pipeline, sent, 100)
            sent += 100
            pipeline.wait_learned(sent)
        releases = pipeline.wait_releases(4)
        older, before = releases[-3], releases[-2]

        first = pipeline.cli("models", "rollback")
        releases = pipeline.wait_releases(len(releases) + 1)
        assert (releases[-1]["reason"], releases[-1]["parent"]) == ("rollback", before["version"]), (
            first.stdout
        )
        assert _span(before) and _span(releases[-1]) == _span(before)
        # It names the version it restored, on probation too (it said "rollback applied; serving v11": adv46).
        assert f"rolled back to v{before['version']} (released as v{releases[-1]['version']})" in first.stdout

        second = pipeline.cli("models", "rollback")
        releases = pipeline.wait_releases(len(releases) + 1)
        again = releases[-1]
        assert (again["reason"], again["parent"]) == ("rollback", older["version"]), second.stdout
        assert again["metrics"]["restored_from"] == float(older["version"])
        assert f"rolled back to v{older['version']}" in second.stdout
        assert _span(older) and _span(again) == _span(older)
