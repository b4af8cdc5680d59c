"""The rule book of a model's live controls: which ControlCommands exist, their arguments, and the keys, types and
ranges a live ``set KEY=VALUE`` accepts.

Checked by the trainer before it applies a command (:meth:`learners.lifecycle.ModelLifecycle.apply_control`) and by
``driftline models`` before it sends one, so both give the same answer without the trainer's state.
"""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Any

from driftline.config import DriftConfig, GuardConfig, check_guard_config
from driftline.errors import ConfigError
from learners.drift import check_drift_config

# Shares and significance levels: strictly between 0 and 1.
_PROBABILITIES = {"alpha", "probation_alpha", "max_disagreement", "collapse_share", "adwin_delta"}


def _parse_setting(key: str, value: str, current: Any, optional: bool = False) -> Any:
    """Parse a live ``set`` value like the current one; refuse NaN/inf, negatives and shares outside (0, 1).

    A mapping (a detector's ``*_params``) is given as a JSON object; an optional number (``float | None``, e.g.
    ``guard.fairness_max_gap``) as a number, or ``null``/``none`` to turn it off.
    """
    if isinstance(current, dict):
        try:
            mapping = json.loads(value)
        except ValueError:
            mapping = None
        if not isinstance(mapping, dict):
            raise ConfigError(f'set: {key} expects a JSON object, e.g. {{"threshold": 50}}, got {value!r}')
        return mapping
    if optional:
        if value.strip().lower() in ("null", "none"):
            return None
        current = 0.0
    if isinstance(current, bool):
        if value.lower() not in _BOOLS:
            raise ConfigError(f"set: {key} expects true or false, got {value!r}")
        return value.lower() in ("1", "true", "yes", "on")
    try:
        # int() and float() read a fullwidth 9 as 9 and '1_0' as 10 (adv46); a name (a detector's) may hold '_'
        if isinstance(current, (int, float)) and (not value.isascii() or "_" in value):
            raise ValueError(value)
        parsed = type(current)(value)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"set: bad value {value!r} for {key} (expected {type(current).__name__})") from exc
    if isinstance(parsed, (int, float)):
        if not math.isfinite(parsed) or parsed < 0:
            raise ConfigError(f"set: {key} must be a finite, non-negative number, got {value!r}")
        if key.partition(".")[2] in _PROBABILITIES and not 0 < parsed < 1:
            raise ConfigError(f"set: {key} must be between 0 and 1, got {value!r}")
        if isinstance(parsed, int) and parsed >= 2**63:
            # A config file refuses these (driftline.settings); a live set took release_every=10**20 until
            # session 39 and the trainer answered "set done".
            raise ConfigError(f"set: {key} must be an integer within 64 bits, got {value!r}")
    return parsed


def check_setting(key: str, value: str, guard: GuardConfig, drift: DriftConfig) -> tuple[str, str, Any]:
    """``(section, field, parsed value)`` of a live ``set KEY=VALUE``, or :class:`ConfigError` naming the key.

    The one rule book for live settings: the trainer applies with it and ``driftline models set`` checks with it
    before sending (the types come from the dataclasses, so any config of the same classes gives the same answer).
    """
    if key == "release_every":
        parsed = _parse_setting(key, value, 1)
        if parsed < 1:
            raise ConfigError(f"set: release_every must be >= 1, got {value!r}")
        return "model", key, parsed
    section, _, name = key.partition(".")
    targets: dict[str, Any] = {"guard": guard, "drift": drift}
    if section not in targets or name not in {f.name for f in dataclasses.fields(targets[section])}:
        raise ConfigError(f"set: unknown setting {key!r} (release_every, guard.<field>, drift.<field>)")
    declared = next(str(f.type) for f in dataclasses.fields(targets[section]) if f.name == name)
    optional = declared.replace(" ", "") == "float|None"
    parsed = _parse_setting(key, value, getattr(targets[section], name), optional)
    if section == "drift":  # a detector name must be registered, and its parameters must fit it
        check_drift_config(dataclasses.replace(drift, **{name: parsed}))
    if section == "guard":  # the same ranges as a config file's (driftline.config)
        check_guard_config(dataclasses.replace(guard, **{name: parsed}))
    return section, name, parsed


LIVE_SETTINGS_HELP = "release_every, guard.<field>, drift.<field>"
#: Settings of the per-feature drift detectors. They run in the score workers, which read them at start and follow
#: no control command (the trainer's own feature monitor is off: ``streams.train``), so a live ``set`` of one changed
#: nothing and was answered "done" (docs46: the README's alarm-storm advice set ``drift.ph_feature_threshold``
#: live). Refused, saying where to set it. ``drift.feature_drift`` is not here: it is the trainer's own switch.
SCORER_SETTINGS = frozenset(
    f"drift.{name}"
    for name in (
        "feature_warmup",
        "ph_feature_delta",
        "ph_feature_threshold",
        "feature_cooldown",
        "max_features",
        "feature_detector",
        "feature_detector_params",
    )
)
CONTROL_COMMANDS = ("set", "promote", "rollback", "pause_learning", "resume_learning")
_CANDIDATES = ("held", "challenger", "champion")
_BOOLS = ("1", "true", "yes", "on", "0", "false", "no", "off")


def validate_control(command: str, args: dict[str, str], guard: GuardConfig, drift: DriftConfig) -> None:
    """Refuse a malformed ControlCommand (:class:`ConfigError` naming the command, argument or key).

    Checks what can be checked without the trainer's state: the command, its arguments, and each ``set`` key,
    type and range. Whether a held candidate or a version exists is for the trainer to answer.
    """
    allowed: dict[str, tuple[str, ...]] = {
        "promote": ("candidate", "version"),
        "rollback": (),
        "pause_learning": ("discard",),
        "resume_learning": (),
    }
    if command not in CONTROL_COMMANDS:
        raise ConfigError(
            f"unknown control command {command!r} (expected one of {', '.join(CONTROL_COMMANDS)})"
        )
    if command == "set":
        if not args:
            raise ConfigError(f"set: nothing to set (KEY=VALUE with KEY one of {LIVE_SETTINGS_HELP})")
        for key, value in args.items():
            if key in SCORER_SETTINGS:
                raise ConfigError(
                    f"set: {key} is not a live setting: it configures the feature drift detectors, which run in the "
                    "score workers and read it at start. Set it in their configuration (the settings file, or "
                    f"DRIFTLINE__{key.replace('.', '__').upper()}) and restart them"
                )
            check_setting(key, value, guard, drift)
        return
    extra = sorted(set(args) - set(allowed[command]))
    if extra:
        raise ConfigError(f"{command}: unknown argument(s) {', '.join(map(repr, extra))}")
    if command == "promote":
        if "candidate" in args and "version" in args:
            raise ConfigError("promote: give either a version or a candidate, not both")
        if "candidate" in args and args["candidate"] not in _CANDIDATES:
            raise ConfigError(
                f"promote: candidate must be one of {', '.join(_CANDIDATES)}, got {args['candidate']!r}"
            )
        if "version" in args:
            try:
                # ASCII digits only: int() reads a fullwidth or Arabic-Indic 5 as 5, '5_0' as 50, ' 5' as 5 (adv46).
                if not (args["version"].isascii() and args["version"].isdigit()):
                    raise ValueError(args["version"])
                version = int(args["version"])
            except ValueError:
                raise ConfigError(
                    f"promote: version must be an integer (a version from `models list`) or one of "
                    f"{', '.join(_CANDIDATES)}, got {args['version']!r}"
                ) from None
            if not 1 <= version < 2**63:
                raise ConfigError(f"promote: version must be between 1 and 2^63-1, got {version}")
    if command == "pause_learning" and "discard" in args and args["discard"].lower() not in _BOOLS:
        raise ConfigError(f"pause_learning: discard expects true or false, got {args['discard']!r}")
