"""README's configuration table lists every environment variable the settings loader reads (outside, session 33:
``DRIFTLINE_OPERATOR_KEY`` and ``DRIFTLINE_PREVIOUS_SIGNING_KEY`` were read but not in the table). No broker."""

from __future__ import annotations

import re
from pathlib import Path

from driftline.settings import ENV_VARS

README = Path(__file__).resolve().parents[1] / "README.md"


def test_every_environment_variable_is_in_the_readme_table() -> None:
    rows = dict(re.findall(r"^\| `(DRIFTLINE_[A-Z_]+)` \| `([a-z_.]+)`", README.read_text(), re.MULTILINE))
    assert rows == ENV_VARS
