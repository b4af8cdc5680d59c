"""An unknown version is answered with the known ones as ranges (session 31): ``models show 99999`` printed every
one of 800 retained versions on one line ("known: [1, 2, 3, ..."), and ``models diff`` the same."""

from __future__ import annotations

import pytest

from driftline.errors import ArtifactError
from driftline.util import version_ranges
from learners.registry import ModelRegistry


def test_versions_are_shown_as_ranges() -> None:
    assert version_ranges([]) == "none"
    assert version_ranges([3]) == "3"
    assert version_ranges(range(1, 804)) == "1-803"
    assert version_ranges([9, 1, 2, 3, 5, 7, 8]) == "1-3, 5, 7-9"


def test_an_unknown_version_names_the_known_ones_as_ranges() -> None:
    registry = ModelRegistry("m")
    registry._releases = {v: {} for v in range(1, 804)}
    with pytest.raises(ArtifactError) as error:
        registry.get(99999)
    assert str(error.value) == "model 'm' has no version 99999 (known: 1-803)"
