"""``driftline config show|validate``."""

from __future__ import annotations

import argparse
import json
import sys

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
        settings = load_settings(args.file, environ={})
        check_runtime(settings)
    except DriftlineError as exc:
        print(f"{args.file}: invalid: {exc}", file=sys.stderr)
        return 2
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
            build_learner(spec, m.task)
        except DriftlineError as exc:
            raise ConfigError(f"{field}: {exc}") from None
    check_drift_config(settings.drift, m.task)
