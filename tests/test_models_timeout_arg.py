"""``driftline models pause|resume|set|promote|rollback --timeout S`` takes a positive number (session 31).

``--timeout 0`` and ``--timeout -1`` sent the command, looked once, and printed "applied (answer read from the audit
topic; Redis has no answer filed)" although the trainer had filed its answer in Redis: a wait of nothing is no wait.
``--no-wait`` is the way not to wait.
"""

from __future__ import annotations

import pytest

from streams.cli import main


@pytest.mark.parametrize("value", ["0", "-1", "nan", "inf"])
def test_a_timeout_that_is_not_a_positive_number_is_a_usage_error(
    value: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Nowhere to send to, should the argument pass: the test never reaches a broker.
    monkeypatch.setenv("DRIFTLINE_KAFKA_BOOTSTRAP", "127.0.0.1:1")
    monkeypatch.setenv("DRIFTLINE_REDIS_URL", "redis://127.0.0.1:1/0")
    for var in ("DRIFTLINE_SIGNING_KEY", "DRIFTLINE_OPERATOR_KEY", "DRIFTLINE_CONFIG"):
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(SystemExit) as exit_:
        main(["models", "pause", "--timeout", value])
    assert exit_.value.code == 2
    assert "--timeout" in capsys.readouterr().err
