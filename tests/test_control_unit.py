"""Pure logic of the control protocol and the status screen: command signatures and refusals, the shared validation
rules, and what ``status`` renders for trouble (no broker needed)."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from driftline.config import DriftConfig, GuardConfig
from driftline.errors import ConfigError
from driftline.settings import Secret, load_settings
from learners.lifecycle_control import SCORER_SETTINGS, check_setting, validate_control
from streams import control
from streams.commands.status import render
from streams.control import key_id, new_command, refusal
from streams.status import deadletter_reason
from streams.watch import WARMUP, InputWatch

KEY = "unit-tests-operator-key-0123456789abcdef"


def settings(key: str = KEY):  # type: ignore[no-untyped-def]
    return load_settings(environ={}, overrides={"model.operator_key": key})


def test_a_signed_command_passes_and_every_tampering_is_named() -> None:
    cmd = new_command(settings(), "set", {"guard.alpha": "0.01"})
    keys, now = [KEY.encode()], cmd["ts"]
    assert refusal(cmd, keys, set(), now, 600) is None
    assert refusal(dict(cmd, signature=""), keys, set(), now, 600)[0] == "unsigned"  # type: ignore[index]
    assert refusal(dict(cmd, args={"guard.alpha": "0.5"}), keys, set(), now, 600)[0] == "signature"  # type: ignore[index]
    assert refusal(dict(cmd, model="other"), keys, set(), now, 600)[0] == "signature"  # type: ignore[index]
    other = new_command(settings("another-operator-key-0123456789abcdef"), "rollback", {})
    assert refusal(other, keys, set(), now, 600)[0] == "signature"  # type: ignore[index]
    assert refusal(cmd, keys, set(), now + 601_000, 600)[0] == "stale"  # type: ignore[index]
    assert refusal(cmd, keys, set(), now - 601_000, 600)[0] == "stale"  # type: ignore[index]
    assert refusal(cmd, keys, {cmd["id"]}, now, 600)[0] == "replay"  # type: ignore[index]
    assert cmd["key_id"] == key_id(KEY.encode()) and KEY not in str(cmd)


def test_without_any_key_nothing_is_signed() -> None:
    s = settings("")
    s = dataclasses.replace(s, model=dataclasses.replace(s.model, signing_key=Secret("")))
    with pytest.raises(ConfigError, match="DRIFTLINE_OPERATOR_KEY"):
        new_command(s, "pause_learning", {})


@pytest.mark.parametrize(
    ("command", "args", "named"),
    [
        ("set", {"bogus.key": "1"}, "bogus.key"),
        ("set", {"drift.adwin_delta": "abc"}, "drift.adwin_delta"),
        ("set", {"guard.alpha": "nan"}, "guard.alpha"),
        ("set", {"guard.alpha": "1.5"}, "guard.alpha"),
        ("set", {"release_every": "0"}, "release_every"),
        ("set", {"kafka.partitions": "8"}, "kafka.partitions"),
        ("set", {}, "nothing to set"),
        ("explode", {}, "explode"),
        ("promote", {"version": "x"}, "version"),
        # outside36: "must be an integer" alone did not say the other accepted words
        ("promote", {"version": "abc"}, "or one of held, challenger, champion, got 'abc'"),
        ("promote", {"version": str(2**63)}, "version"),
        # adv46: int() read these as 5, 5, 50, 5 and 5: a version is written in ASCII digits
        ("promote", {"version": "\uff15"}, "got '\uff15'"),
        ("promote", {"version": "\u0665"}, "got '\u0665'"),
        ("promote", {"version": "5_0"}, "got '5_0'"),
        ("promote", {"version": " 5"}, "got ' 5'"),
        ("promote", {"version": "+5"}, "got '\\+5'"),
        ("set", {"release_every": "\uff19"}, "release_every"),
        ("set", {"release_every": "1_0"}, "release_every"),
        ("set", {"guard.alpha": "0.0_1"}, "guard.alpha"),
        ("promote", {"candidate": "mine"}, "candidate"),
        ("rollback", {"to": "3"}, "'to'"),
        ("pause_learning", {"discard": "maybe"}, "discard"),
    ],
)
def test_invalid_commands_are_refused_naming_what_is_wrong(
    command: str, args: dict[str, str], named: str
) -> None:
    with pytest.raises(ConfigError, match=named.replace(".", r"\.")):
        validate_control(command, args, GuardConfig(), DriftConfig())


@pytest.mark.parametrize("key", sorted(SCORER_SETTINGS))
def test_a_live_set_of_a_feature_detector_setting_is_refused_saying_where_to_set_it(key: str) -> None:
    # The score workers run the feature detectors and read these at start; a live set changed only the trainer's
    # unused copy and was answered "done" (docs46).
    with pytest.raises(
        ConfigError, match=rf"set: {key} is not a live setting: .* score workers .* restart them"
    ):
        validate_control("set", {key: "200"}, GuardConfig(), DriftConfig())


def test_valid_commands_pass() -> None:
    for command, args in [
        ("set", {"guard.alpha": "0.01", "release_every": "500", "drift.feature_drift": "false"}),
        ("promote", {"version": "3"}),
        ("promote", {"candidate": "held"}),
        ("rollback", {}),
        ("pause_learning", {"discard": "true"}),
        ("resume_learning", {}),
    ]:
        validate_control(command, args, GuardConfig(), DriftConfig())


def test_input_watch_warns_once_per_type_change_and_on_a_late_new_class() -> None:
    watch = InputWatch("classification")
    assert watch.check({"a": 1.0}, 0, 0) == [] and watch.check({"a": 2.0}, 1, 1) == []
    (w,) = watch.check({"a": "sunny"}, 0, 2)
    assert (w.detector, w.signal, w.details["was"], w.details["now"]) == (
        "schema",
        "feature_type:a",
        "number",
        "string",
    )
    assert watch.check({"a": "rainy", "b": None}, 1, 3) == []  # same type again: no new warning
    for i in range(WARMUP):
        watch.check({"a": "x"}, i % 2, 4 + i)
    (new,) = watch.check({"a": "x"}, 7, 100)
    assert new.signal == "label:new_class" and new.details["label"] == "7"


def test_status_renders_trouble() -> None:
    status = {
        "topic_prefix": "p.",
        "stack": {"kafka": {"address": "k", "up": True}, "redis": {"address": "r", "up": True}, "up": True},
        "workers": [],
        "models": [
            {
                "model": "default",
                "releases": 3,
                "served_version": 3,
                "latest_release": None,
                "releases_verified": True,
                "unverified_releases": [{"version": 99, "reason": "signature"}],
                "trainer": {"n_learned": 10, "served_version": 3, "paused": True, "updated_at": 0,
                            "held_examples": 12, "pause_discard": False, "held_candidate": True},
                "joins": {"pending": 4, "parked": 2, "oldest_pending_age_s": 125.0},
            }
        ],
        "drift_last_hour": {"total": 0, "by_signal": {}},
        "deadletters_last_hour": {"total": 2, "by_reason": {"features: SchemaError": 2},
                                  "newest": {"ts": 0, "error": "SchemaError: not JSON"}},
    }  # fmt: skip
    text = render(status)
    for expected in (
        "candidate is HELD for approval",
        "learning PAUSED: 12 label(s) held for resume",
        "4 prediction(s) waiting for a label (oldest 2m)",
        "2 label(s) parked",
        "UNVERIFIED release v99 (signature)",
        "dead letters in the last hour: 2",
        "features: SchemaError",
    ):
        assert expected in text, (expected, text)


def test_deadletter_reasons_group_without_quoted_values() -> None:
    assert deadletter_reason("control command 'explode' refused: unsigned") == "control command '...' refused"
    assert deadletter_reason("SchemaError: features: bad") == "SchemaError"


def test_a_non_hex_signature_with_a_known_key_id_is_refused_as_a_bad_signature() -> None:
    # The key id is public (every command carries it); a signature of non-ASCII characters made hmac.compare_digest
    # raise TypeError, so the trainer dead-lettered it as an error instead of refusing and counting it.
    cmd = new_command(settings(), "pause_learning", {})
    keys, now = [KEY.encode()], cmd["ts"]
    for forged in ("é" * 64, "zz" * 32, "\x00"):
        assert refusal(dict(cmd, signature=forged), keys, set(), now, 600)[0] == "signature"  # type: ignore[index]


def test_optional_and_mapping_settings_can_be_set_live() -> None:
    # guard.fairness_max_gap (default None) and the detectors' *_params mappings are settings like any other: they
    # were refused ("expected NoneType" / "expected dict") whatever the value, so they could not be set live at all.
    guard, drift = GuardConfig(), DriftConfig()
    assert check_setting("guard.fairness_max_gap", "0.1", guard, drift) == ("guard", "fairness_max_gap", 0.1)
    on = dataclasses.replace(guard, fairness_max_gap=0.1)
    assert check_setting("guard.fairness_max_gap", "null", on, drift)[2] is None
    assert check_setting("drift.error_detector", "kswin", guard, drift)[2] == "kswin"
    params = check_setting("drift.loss_detector_params", '{"threshold": 50}', guard, drift)
    assert params == ("drift", "loss_detector_params", {"threshold": 50})


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("guard.fairness_max_gap", "abc"),
        ("guard.fairness_max_gap", "-0.1"),
        ("guard.fairness_max_gap", "nan"),
        ("drift.loss_detector_params", "[1]"),
        ("drift.loss_detector_params", "{not json"),
        ("drift.loss_detector_params", '{"bogus_parameter": 1}'),
    ],
)
def test_bad_optional_and_mapping_settings_are_refused_naming_the_key(key: str, value: str) -> None:
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        check_setting(key, value, GuardConfig(), DriftConfig())


def test_a_refusal_is_answered_for_minutes_an_applied_command_for_a_day() -> None:
    # Found from outside (session 28): anyone who can write `control` made the trainer file a day-long answer per
    # forged command, at the writer's rate.
    class Recorder:
        def __init__(self) -> None:
            self.calls: list[tuple[str, int, bool]] = []

        def set(self, key: str, value: str, ex: int, nx: bool) -> None:
            self.calls.append((key, ex, nx))

    client: Any = Recorder()
    settings = load_settings(environ={})
    control.write_reply(client, settings, "c1", {"id": "c1", "outcome": "ok"})
    control.write_reply(client, settings, "c2", {"id": "c2", "outcome": "refused", "reason": "unsigned"})
    assert [(ex, nx) for _, ex, nx in client.calls] == [
        (control.REPLY_TTL_S, True),
        (control.REFUSAL_TTL_S, True),
    ]
    assert control.REFUSAL_TTL_S <= 600 < control.REPLY_TTL_S


def test_a_command_signed_as_the_readme_says_is_accepted() -> None:
    """Outside, session 33: the README said commands carry "an HMAC-SHA256 signature" but not over what, so no
    client but `driftline models` could sign one, though `control` takes JSON from any client. The recipe the README
    gives now, written out here without driftline's helpers, must pass the trainer's check."""
    import hashlib
    import hmac
    import json
    import time

    key = b"an-operator-key-of-at-least-32-bytes!!"
    record: dict[str, Any] = {
        "model": "default",
        "command": "pause_learning",
        "args": {},
        "ts": int(time.time() * 1000),
        "id": "outside-1",
        "key_id": "k-" + hashlib.sha256(b"driftline-operator-key:" + key).hexdigest()[:12],
    }
    canonical = json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    record["signature"] = hmac.new(key, canonical, hashlib.sha256).hexdigest()
    assert control.refusal(record, [key], set(), record["ts"], 600) is None


def test_a_bad_signature_under_a_key_the_trainer_holds_says_the_fields_not_the_key() -> None:
    """Outside, session 41: a command signed with the trainer's own key over other bytes (an extra field signed,
    `args` left out) was refused as "key id ... is not a key this trainer holds", sending its sender to check a key
    that was right."""
    cmd = new_command(settings(), "set", {"guard.alpha": "0.01"})
    keys, now = [KEY.encode()], cmd["ts"]
    reason, message = refusal(dict(cmd, args={"guard.alpha": "0.5"}), keys, set(), now, 600)  # type: ignore[misc]
    assert reason == "signature" and "is this trainer's key" in message and "not a key" not in message
    assert "{model, command, args, ts, id, key_id}" in message
    other = new_command(settings("another-operator-key-0123456789abcdef"), "rollback", {})
    reason, message = refusal(other, keys, set(), now, 600)  # type: ignore[misc]
    assert reason == "signature" and "is not a key this trainer holds" in message
