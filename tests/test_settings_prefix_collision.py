"""A model name that another deployment could spell the same way under a longer topic prefix is refused at config
validation, naming the field (session 35). ``<prefix><model>`` names a model's Redis keys (the join store, the
trainer's status, the scorers' report), consumer groups and audit chain file: prefix ``a.`` with model ``b.c`` and
prefix ``a.b.`` with model ``c`` named the same ones, so ``status`` of one showed the other's trainer and their
joins shared one store."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from driftline.errors import ConfigError
from driftline.settings import Settings, load_settings
from streams.audit import audit_paths
from streams.cli import main
from streams.join import join_namespace
from streams.serving import serving_key
from streams.trainer_status import trainer_status_key


def _settings(prefix: str, **more: object) -> Settings:
    return load_settings(environ={}, overrides={"kafka.topic_prefix": prefix, **more})


def _names(settings: Settings) -> tuple[str, ...]:
    model = settings.model.name
    return (
        join_namespace(settings),
        trainer_status_key(settings),
        serving_key(settings, model),
        str(audit_paths(settings, model)[0]),
    )


def test_the_longer_prefix_is_accepted_and_the_name_that_spells_it_is_refused() -> None:
    nested = _settings("a.b.", **{"model.name": "c"})
    assert _names(nested)[0] == "driftline:a.b.c"
    with pytest.raises(ConfigError) as refused:
        _settings("a.", **{"model.name": "b.c"})
    text = str(refused.value)
    assert text.startswith("model.name: 'b.c' contains '.', the character kafka.topic_prefix 'a.' ends with")
    assert "model 'c' under prefix 'a.b.'" in text and "'b_c'" in text
    # what it would have collided with: the same keys and file, under the names the message gives
    other = _settings("a.", **{"model.name": "b_c"})
    assert set(_names(other)).isdisjoint(_names(nested))


@pytest.mark.parametrize(
    ("prefix", "field", "value"),
    [
        ("a.", "routing.default", "eu.churn"),
        ("a.", "routing.models", ["ok", "eu.churn"]),
        ("dl-", "model.name", "churn-v2"),
        ("dl_", "model.name", "churn_v2"),
    ],
)
def test_every_model_name_the_settings_give_is_checked(prefix: str, field: str, value: object) -> None:
    with pytest.raises(ConfigError, match=rf"^{field}: '[a-z0-9_.-]+' contains '{re.escape(prefix[-1])}'"):
        _settings(prefix, **{field: value})


@pytest.mark.parametrize(
    ("prefix", "name"), [("a.", "churn-v2_eu"), ("dl-", "churn.v2"), ("", "b.c"), ("dl", "b.c")]
)
def test_a_name_without_the_prefixs_separator_is_accepted(prefix: str, name: str) -> None:
    assert _settings(prefix, **{"model.name": name}).model.name == name


def test_the_command_line_refuses_it_naming_the_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for var in ("DRIFTLINE_CONFIG", "DRIFTLINE_MODEL", "DRIFTLINE__MODEL__NAME", "DRIFTLINE_TOPIC_PREFIX"):
        monkeypatch.delenv(var, raising=False)
    assert main(["--topic-prefix", "a.", "--model", "b.c", "status"]) == 2
    assert "model.name: 'b.c' contains '.'" in capsys.readouterr().err
    path = tmp_path / "settings.yaml"
    path.write_text("kafka:\n  topic_prefix: a.\nrouting:\n  models: [b.c]\n")
    proc = subprocess.run(
        [sys.executable, "-m", "streams.cli", "config", "validate", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert proc.returncode == 2 and "routing.models: 'b.c' contains '.'" in proc.stderr, proc.stderr
