"""Guard settings have one rule book (``driftline.config.check_guard_config``): a config value, an environment
variable and a live ``models set`` are refused alike, naming the field, before a test could divide by zero."""

from __future__ import annotations

import pytest

from driftline.config import DriftConfig, GuardConfig
from driftline.errors import ConfigError
from driftline.settings import load_settings
from learners.guard import PairedEvidence
from learners.lifecycle_control import check_setting

BAD = [
    ("guard.non_inferiority_margin", "1.0", "below 1"),
    ("guard.non_inferiority_margin", "-0.1", "at least 0"),
    ("guard.superiority_margin", "-1", ">= 0"),
    ("guard.hold_margin", "nan", "finite"),
    ("guard.alpha", "1", "between 0 and 1"),
    ("guard.max_disagreement", "0", "between 0 and 1"),
    # Found from outside (session 27): both went through, in a file and live.
    ("guard.max_examples", "1", "at least guard.min_examples"),
    ("guard.fairness_max_gap", "5", "between 0 and 1"),
    ("guard.fairness_max_gap", "-0.1", "between 0 and 1"),
]


@pytest.mark.parametrize(("key", "value", "says"), BAD)
def test_a_bad_guard_value_is_refused_in_a_config_and_live(key: str, value: str, says: str) -> None:
    with pytest.raises(ConfigError, match=rf"{key}: .*{says}"):
        load_settings(environ={}, overrides={key: value})
    with pytest.raises(ConfigError, match=key.partition(".")[2]):
        check_setting(key, value, GuardConfig(), DriftConfig())


def test_the_largest_accepted_margins_keep_the_tests_finite() -> None:
    settings = load_settings(
        environ={}, overrides={"guard.non_inferiority_margin": "0.99", "guard.hold_margin": "5"}
    )
    evidence = PairedEvidence("classification", settings.guard)
    for i in range(200):  # label, candidate's answer, baseline's answer: each wrong in turn
        evidence.add(i % 2 == 0, i % 3 == 0, i % 5 == 0)
    assert evidence.n == 200
