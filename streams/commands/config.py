"""``driftline config show|validate``."""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

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
    # What `config validate` refuses (a learner parameter, a detector) is refused here too, with the same message
    # and exit code: `show` printed such settings and exited 0 (session 42), and a worker would not start on them.
    check_runtime(settings)
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
        _check_loadable(field, _trained(model, field), trained=True)
        if not m.artifact_store:
            _check_inline_fits(field, model, m.max_inline_bytes)
    check_drift_config(settings.drift, m.task)


# Made-up labels a copy of the learner learns before the loader's check (see :func:`_trained`).
TRAINED_CHECK_LABELS = 200


def _check_loadable(field: str, model: object | None, *, trained: bool = False) -> None:
    """A learner whose releases the scorers' loader refuses (a class of one's own not in the allow-list) served
    v0, a null prediction, to every event: `config validate` said valid, and only the trainer's log and `status`
    told, advising a smaller learner (session 40, docs/experiments/hostile40.md)."""
    from learners import safe_pickle

    if model is None:
        return
    try:
        safe_pickle.check_loadable(model)
    except DriftlineError as exc:
        when = " once it has learned" if trained else ""
        raise ConfigError(
            f"{field}: the scorers' loader would refuse its releases{when} ({exc}): a learner class of your own "
            'needs an entry in learners.pickle_allow.ALLOWED, and so does each class it builds (README, "Extending")'
        ) from None


def _trained(model: Any, field: str = "model.learner") -> Any:
    """A copy of ``model`` after :data:`TRAINED_CHECK_LABELS` made-up labels (two numeric features, a threshold
    on the first), or None when it cannot learn them (a learner with classes of its own): the untrained check
    then stands alone. Why: many learners build their inner objects only as they learn (a forest's trees and
    their nodes), so River's AMFClassifier passed the check untrained, with only its own class admitted, while
    the trainer withheld every release of the trained model and the scorers served v0 (session 41, arch41.md).

    A kind of driftline's own (:data:`learners.specs.BUILT_IN`) that cannot learn these labels, or answer once it
    has, has a parameter it took without a word: :class:`ConfigError` names the field. Why: ``loss: x`` for
    logistic regression and ``max_features: abc`` for a forest passed this check and failed on every label, and
    knn's ``n_neighbors: 50`` on every event after the first refit (session 45)."""
    import random

    from learners.specs import BUILT_IN

    rng = random.Random(0)
    trained = model.clone()
    spec = trained.spec
    given = _given_classes(spec.params)
    pair = given[:2] if len(given) >= 2 else [False, True]
    try:
        for _ in range(TRAINED_CHECK_LABELS):
            x = {"x0": rng.random(), "x1": rng.random()}
            trained.learn_one(x, pair[x["x0"] > 0.5] if trained.task == "classification" else 2.0 * x["x0"])
        trained.predict_one({"x0": 0.7, "x1": 0.2})
    except Exception as exc:  # the user's learner refuses these labels: not what is being checked here
        if spec.name in BUILT_IN:
            raise ConfigError(
                f"{field}: learner {spec.name!r} cannot learn or answer with these parameters "
                f"({type(exc).__name__}: {str(exc)[:200]}): check them against the estimator's documentation"
            ) from None
        return None
    return trained


def _given_classes(params: Any) -> list[Any]:
    """The ``classes`` a learner's parameters give (sklearn_sgd learns only those), its own or an ``auto`` member's
    or a ``one_vs_rest`` base's, or [] for none."""
    if not isinstance(params, dict):
        return []
    given = params.get("classes")
    if isinstance(given, list):
        return given
    inner = [*(params.get("members") or []), params.get("base")]
    for spec in inner if isinstance(params.get("members") or [], list) else []:
        if isinstance(spec, dict) and (found := _given_classes(spec.get("params"))):
            return found
    return []


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
