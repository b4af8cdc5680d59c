"""``driftline cleanup --prefix P`` removes everything whose name starts with P, so a P that the default prefix
starts with (``driftline``, ``drift``, ``d``) takes the default deployment with it. Found from outside (session 28):
only the exact default prefix was refused without ``--force``."""

from __future__ import annotations

import argparse

import pytest

from streams.commands import cleanup


@pytest.mark.parametrize("prefix", ["driftline.", "driftline", "drift", "d"])
def test_a_prefix_that_covers_the_default_deployment_is_refused(
    prefix: str, capsys: pytest.CaptureFixture[str]
) -> None:
    args = argparse.Namespace(prefix=prefix, force=False, dry_run=True, keep_audit=False, json=False)
    assert cleanup.run(args) == 2  # before any broker is asked
    err = capsys.readouterr().err
    assert "'driftline.'" in err and "--force" in err
