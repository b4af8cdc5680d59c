"""``driftline config show|validate``."""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import yaml

from driftline.errors import ConfigError, DriftlineError
from driftline.settings import Settings, load_settings, to_dict
from streams.cli import settings_from_args


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("config", help="show or validate settings", description="Show or validate settings.")
    csub = p.add_subparsers(dest="config_command", metavar="ACTION", required=True)
    show = csub.add_parser("show", help="print the effective settings (secrets masked)")
    show.add_argument("--json", action="store_true", help="print JSON instead of YAML")
    show.set_defaults(func=_show)
    val = csub.add_parser("validate", help="check a YAML settings file; exit 2 naming the bad field")
    val.add_argument("file", help="YAML settings file")
    val.add_argument(
        "--json",
        action="store_true",
        help='print {"file", "valid", "field", "error"} (exit codes as without it)',
    )
    val.set_defaults(func=_validate)


def _show(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    data = to_dict(settings, mask=True)
    if args.json:
        print(json.dumps(data, indent=2, sort_keys=True))
    else:
        print(yaml.safe_dump(data, sort_keys=False), end="")
    return 0


def _validate(args: argparse.Namespace) -> int:
    try:
        settings = load_settings(args.file, environ={}, name_source=False)  # the file is the only source
        check_runtime(settings)
    except DriftlineError as exc:
        if args.json:
            # The field the error names first ("drift.delta: must be ..."), for a script that reads it.
            # An error about the file itself (unreadable, not YAML, a key written twice) starts with the file's
            # name, which may look like a field ("settings.yaml"): no field then.
            head = str(exc).split(":", 1)[0]
            named = re.fullmatch(r"[a-z_][a-z0-9_]*(\.[a-z0-9_]+)*", head)
            field = head if named and head != str(Path(args.file).expanduser()) else None
            print(json.dumps({"file": args.file, "valid": False, "field": field, "error": str(exc)}))
        else:
            print(f"{args.file}: invalid: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps({"file": args.file, "valid": True, "field": None, "error": None}))
    else:
        print(f"{args.file}: valid")
    return 0


def check_runtime(settings: Settings) -> None:
    """What a worker would refuse at start-up beyond the settings' own types and ranges: the learner and challenger
    specs (kind and parameters) and the drift detectors (names, parameters, and 0/1 detectors only on 0/1 values).
    :class:`DriftlineError` names the field. Kept out of :func:`load_settings`: these checks need the learners."""
    from learners.drift import check_drift_config
    from learners.specs import build_learner

    m = settings.model
    for field, spec in (("model.learner", m.learner), ("model.challenger", m.challenger)):
        if spec is None:
            continue
        try:
            model = build_learner(spec, m.task)
        except DriftlineError as exc:
            raise ConfigError(f"{field}: {exc}") from None
        _check_loadable(field, model)
        if not m.artifact_store:
            _check_inline_fits(field, model, m.max_inline_bytes)
    check_drift_config(settings.drift, m.task)


def _check_loadable(field: str, model: object) -> None:
    """A learner whose releases the scorers' loader refuses (a class of one's own not in the allow-list) served
    v0, a null prediction, to every event: `config validate` said valid, and only the trainer's log and `status`
    told, advising a smaller learner (session 40, docs/experiments/hostile40.md)."""
    from learners import safe_pickle

    try:
        safe_pickle.check_loadable(model)
    except DriftlineError as exc:
        raise ConfigError(
            f"{field}: the scorers' loader would refuse its releases ({exc}): a learner class of your own needs "
            'an entry in learners.pickle_allow.ALLOWED (README, "Extending")'
        ) from None


def _check_inline_fits(field: str, model: object, limit: int) -> None:
    """With no artifact store every release travels inline: a limit under the untrained learner's artifact
    withholds every release, v1 included (the trainer published nothing and said so only in its log and
    ``status``); under the untrained challenger's, every challenger promotion (the learner's releases go)."""
    from learners import safe_pickle

    size = len(safe_pickle.dumps(model))
    if size > limit:
        lost = (
            "every challenger promotion would be withheld"
            if field == "model.challenger"
            else "every release would be withheld, v1 included"
        )
        raise ConfigError(
            f"model.max_inline_bytes: {limit} bytes cannot carry even the untrained {field}'s artifact ({size} "
            f"bytes) and model.artifact_store is empty, so {lost}: set "
            "model.artifact_store (a directory the trainer and the scorers share) or raise "
            "model.max_inline_bytes (a learned model's artifact is larger; within the broker's message.max.bytes)"
        )
