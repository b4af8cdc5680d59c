"""What the default pipeline writes outside the contract's listed values is said where the README lists what
extends the contract (an outside check of issue 4: a reader validating DriftEvents and Predictions against the
contract alone meets these on a default deployment)."""

from __future__ import annotations

import json
from pathlib import Path

from streams.watch import WARMUP, InputWatch

ROOT = Path(__file__).resolve().parents[1]
CONTRACT_DETECTORS = {"adwin", "page_hinkley"}  # CONTRACT.md: DriftEvent.detector
CONTRACT_SIGNALS = ("error", "loss", "feature:")  # CONTRACT.md: DriftEvent.signal


def _extensions() -> str:
    readme = (ROOT / "README.md").read_text()
    return readme.split("\n## Where this extends the contract\n", 1)[1].split("\n## ", 1)[0]


def _schema_signals() -> list[tuple[str, str]]:
    """The DriftEvents a default trainer publishes for silent input changes, made by the code that makes them."""
    watch = InputWatch("classification")
    out = []
    for i in range(WARMUP):
        out += watch.check({"x": float(i)}, i % 2 == 0, i)
    out += watch.check({"x": "sunny"}, "maybe", WARMUP)
    return [(s.detector, s.signal) for s in out]


def test_input_warnings_are_drift_events_outside_the_contracts_values() -> None:
    signals = _schema_signals()
    assert {d for d, _ in signals} - CONTRACT_DETECTORS  # else this test guards nothing
    assert any(not s.startswith(CONTRACT_SIGNALS) for _, s in signals)


def test_readme_names_every_detector_and_signal_outside_the_contract() -> None:
    section = _extensions()
    for detector, signal in _schema_signals():
        if detector not in CONTRACT_DETECTORS:
            assert f"`{detector}`" in section, (
                f"README's contract extensions do not name detector {detector!r}"
            )
        if not signal.startswith(CONTRACT_SIGNALS):
            stem = signal.split(":", 1)[0] + ":"
            assert stem in section, f"README's contract extensions do not name signal {signal!r}"


def test_readme_and_schema_say_what_version_0_means() -> None:
    """Before a model's first release a scorer publishes Predictions with version 0 and a null prediction (and the
    feature monitors' DriftEvents carry version 0); releases start at 1."""
    assert "version 0" in _extensions() or "version` 0" in _extensions()
    fields = {f["name"]: f for f in json.loads((ROOT / "schemas" / "Prediction.avsc").read_text())["fields"]}
    assert "0" in fields["version"]["doc"]
    drift = {f["name"]: f for f in json.loads((ROOT / "schemas" / "DriftEvent.avsc").read_text())["fields"]}
    assert "schema" in drift["detector"]["doc"]
