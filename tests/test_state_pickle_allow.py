"""A trainer's sealed state is read by the restricted loader, as a model artifact is: a record sealed with a leaked
signing key runs nothing in the trainer (the gadgets are refused, with their class named, and their side effect
never happens), while every kind of real trainer state still restores and goes on exactly as the trainer that
sealed it; the state allow-list is exactly what real states pickle.

Each gadget is first shown to work under plain ``pickle.loads`` where that is harmless here (a file written in
tmp_path), so the refusal is a real one.
"""

from __future__ import annotations

import base64
import contextlib
import importlib
import json
import lzma
import os
import pickle
import tempfile
from pathlib import Path
from typing import Any

import pytest

from driftline.errors import SecurityError
from learners import pickle_allow, safe_pickle
from learners.detectors import DETECTORS, build_detector
from learners.guard import Decision, MixtureEProcess
from streams.train import StateRefused, seal, unseal
from tests.learner_kinds import load_recording, specs
from tests.trainer_helpers import drifting_examples, learned_trainer, offline_trainer

KEY = "state-allow-list-signing-key-of-32-bytes!"
LABELS = 500  # per kind: the concept flips at 250 (an alarm, a challenger for most kinds)
GOLDEN = Path(__file__).with_name("golden") / "checkpoints.json"


class _Reduce:
    """Pickles as ``func(*args)``: how a forger writes a gadget."""

    def __init__(self, func: Any, args: tuple[Any, ...]) -> None:
        self.reduced = (func, args)

    def __reduce__(self) -> Any:
        return self.reduced


def _pickle_of(sealed: bytes) -> bytes:
    payload = sealed.partition(b"\n")[2]
    return payload.partition(b"\n")[2] if payload.startswith(b"{") else payload


def _globals_of(sealed: bytes) -> set[tuple[str, str]]:
    seen: set[tuple[str, str]] = set()
    state = load_recording(_pickle_of(sealed), seen)
    if isinstance(state.get("served_fairness"), bytes):
        load_recording(state["served_fairness"], seen)
    return seen


def _detector_globals(name: str) -> set[tuple[str, str]]:
    """What a state holding detector ``name`` (any ``drift.*_detector`` may name) pickles for it: the detector as
    ``learners.drift.check_restorable`` checks it, fed 0/1 values."""
    detector = build_detector(name, {})
    for i in range(300):
        detector.update(i % 2 if i < 150 else int(i % 3 == 0))
    seen: set[tuple[str, str]] = set()
    load_recording(pickle.dumps(detector, protocol=5), seen)
    return seen


def _golden_records() -> dict[str, bytes]:
    records = json.loads(GOLDEN.read_text(encoding="utf-8"))
    return {task: lzma.decompress(base64.b64decode(r["sealed"])) for task, r in records.items()}


@pytest.fixture(scope="module")
def states() -> dict[str, tuple[Any, bytes]]:
    """(trainer, its sealed state) per learner kind and task, after a drifting stream."""
    out = {}
    with tempfile.TemporaryDirectory(prefix="state-allow-") as state_dir:
        for kid, spec, task in specs(extras=False):
            trainer = learned_trainer(spec, task, LABELS, KEY, state_dir)
            if kid == "logistic_regression-0-classification":  # a candidate held for the operator, too
                lc = trainer.lifecycle
                lc._held = (lc._lineage.copy(), Decision("hold", "incremental", "champion", text="held"))
                # and the incremental test as a shadow that took over leaves it (learners.policies.SHADOW)
                evidence = lc._increment.evidence
                shadow = MixtureEProcess(evidence.not_worse.m)
                for d in (0.0, 1.0, 0.0, -1.0, 1.0):
                    shadow.add(d)
                evidence.not_worse = shadow
            out[kid] = (trainer, seal(trainer.state(), KEY.encode()))
    return out


def _sealed(state: Any, model: str = "default") -> bytes:
    """What a leaked key allows: any pickle, sealed as a trainer seals its state."""
    return seal({"model": model, "commits": 1, "lifecycle": state}, KEY.encode())


def _answers(lifecycle: Any, probe: list[dict[str, Any]]) -> list[Any]:
    from learners.specs import Learner

    models = [lifecycle.served_model, lifecycle.champion, lifecycle.challenger]
    return [[m.predict_one(x) for x in probe] if isinstance(m, Learner) else None for m in models]


def test_every_kind_of_trainer_state_restores_and_goes_on_as_the_trainer_that_sealed_it(
    states: dict[str, tuple[Any, bytes]],
) -> None:
    """Restored through the restricted loader, each state answers as the trainer that sealed it (served model,
    champion, challenger), with the same counts, offsets, recent ids and held examples, then learns on. (Only
    at the restore: some kinds refit with unseeded estimators, so two trainers' later decisions may differ.)"""
    assert any(t.lifecycle.challenger is not None for t, _ in states.values()), "no state holds a challenger"
    assert all(t.held and t.ctx.served_fairness() is not None for t, _ in states.values())
    for kid, (trainer, sealed) in states.items():
        state = unseal(sealed, [KEY.encode()], kid)  # the restricted loader
        successor = offline_trainer(trainer.ctx.settings)
        successor.releases = dict
        successor.start(state, trainer.lifecycle.served_version)
        task = trainer.ctx.settings.model.task
        probe = [example["features"] for _, example in drifting_examples(task, 30, seed=4)]
        before, after = trainer.lifecycle, successor.lifecycle
        assert _answers(after, probe) == _answers(before, probe), kid
        assert (after.n_learned, after.served_version) == (before.n_learned, before.served_version), kid
        assert (successor.offsets, successor.held, len(successor.seen)) == (
            trainer.offsets,
            trainer.held,
            len(trainer.seen),
        ), kid
        fairness = successor.ctx.served_fairness()
        assert fairness is not None and len(fairness) == len(trainer.ctx.served_fairness()), kid
        successor.apply("resume_learning", {})  # learns the 20 held examples
        learned = successor.process(drifting_examples(task, 50, seed=3, start=LABELS + 20))
        assert learned == 50 and successor.lifecycle.overall.n == before.overall.n + 70, kid


def test_every_global_a_state_pickles_is_allow_listed(states: dict[str, tuple[Any, bytes]]) -> None:
    found = {kid: _globals_of(sealed) for kid, (_, sealed) in states.items()}
    found.update({f"golden-{task}": _globals_of(sealed) for task, sealed in _golden_records().items()})
    found.update({f"detector-{name}": _detector_globals(name) for name in DETECTORS})
    missing = {kid: sorted(seen - pickle_allow.STATE_ALLOWED.keys()) for kid, seen in found.items()}
    assert not any(missing.values()), missing
    needed = set().union(*found.values())
    unused = set(pickle_allow.STATE_ONLY) - needed
    assert not unused, f"allow-listed for states but pickled by none: {sorted(unused)}"


def test_state_only_entries_name_one_object_each_and_own_reductions_carry_a_note() -> None:
    for (module, name), note in pickle_allow.STATE_ONLY.items():
        obj: Any = importlib.import_module(module)
        for part in name.split("."):
            obj = getattr(obj, part)
        own = [
            attr
            for attr in ("__reduce__", "__reduce_ex__", "__setstate__", "__getstate__")
            if isinstance(obj, type) and attr in vars(obj)
        ]
        assert note and (not own or "plain" not in note.split(":")[0]), (module, name, own)
    for (module, name), methods in pickle_allow.BOUND_METHODS.items():
        cls = getattr(importlib.import_module(module), name)
        assert (module, name) in pickle_allow.STATE_ALLOWED and all(
            callable(getattr(cls, m)) for m in methods
        )


def test_a_gadget_sealed_with_the_real_key_is_refused_and_runs_nothing(tmp_path: Path) -> None:
    marker = tmp_path / "system-ran"
    gadget = _Reduce(os.system, (f"touch {marker}",))
    with contextlib.suppress(Exception):
        pickle.loads(_pickle_of(_sealed(gadget)))  # the gadget is real: plain pickle runs the command
    assert marker.exists(), "os.system no longer runs under plain pickle"
    marker.unlink()
    with pytest.raises(StateRefused) as info:
        unseal(_sealed(gadget), [KEY.encode()], "changelog record of 'default'")
    assert isinstance(info.value, SecurityError) and info.value.reason == "allow_list"
    assert "changelog record of 'default'" in str(info.value)
    assert f"{os.system.__module__}.system is not allowed" in str(info.value)
    assert not marker.exists()


@pytest.mark.parametrize(
    ("func", "named"),
    [
        (exec, "builtins.exec"),
        (eval, "builtins.eval"),
        (open, "io.open"),
        (importlib.import_module, "importlib.import_module"),
    ],
)
def test_builtin_gadgets_are_refused_by_name(tmp_path: Path, func: Any, named: str) -> None:
    marker = tmp_path / "ran"
    code = f"open({str(marker)!r}, 'w').write('x')"
    arg = (str(marker), "w") if func is open else ("os",) if func is importlib.import_module else (code,)
    with pytest.raises(StateRefused, match=f"{named} is not allowed"):
        unseal(_sealed(_Reduce(func, arg)), [KEY.encode()], "changelog")
    assert not marker.exists()


def test_the_scipy_exec_gadget_and_subprocess_are_refused(tmp_path: Path) -> None:
    import subprocess

    from scipy.stats._continuous_distns import norm_gen

    marker = tmp_path / "exec-ran"
    template = f"open({str(marker)!r}, 'w').write('pwned')\ndef _parse_args(*a, **k): return a, k\n"
    state = {"_parse_arg_template": template, "_ctor_param": {}, "numargs": 0, "shapes": None}
    state.update({"_random_state": None, "a": 0, "b": 1, "badvalue": None, "name": "norm", "xtol": 1e-14})

    class _Built:
        def __reduce__(self) -> Any:
            return (norm_gen, (), state)

    with pytest.raises(StateRefused, match=r"scipy\.stats\._continuous_distns\.norm_gen is not allowed"):
        unseal(_sealed(_Built()), [KEY.encode()], "changelog")
    with pytest.raises(StateRefused, match=r"subprocess\.Popen is not allowed"):
        unseal(_sealed(_Reduce(subprocess.Popen, (["touch", str(marker)],))), [KEY.encode()], "changelog")
    assert not marker.exists()


def test_getattr_reaches_only_the_listed_bound_methods() -> None:
    from river.drift import PageHinkley

    detector = PageHinkley(mode="up")
    state = unseal(_sealed(detector), [KEY.encode()], "changelog")  # its bound _test_drift is listed
    assert state["lifecycle"]._test_drift.__func__ is PageHinkley._test_increase
    for target, name in [(detector, "__class__"), (detector, "update"), (PageHinkley, "_test_increase")]:
        with pytest.raises(StateRefused, match=r"builtins\.getattr"):
            unseal(_sealed(_Reduce(getattr, (target, name))), [KEY.encode()], "changelog")
    with pytest.raises(StateRefused, match=r"builtins\.getattr"):  # getattr with a default
        unseal(_sealed(_Reduce(getattr, (detector, "_test_both", None))), [KEY.encode()], "changelog")


def test_a_gadget_in_the_served_fairness_window_is_refused(tmp_path: Path) -> None:
    marker = tmp_path / "fairness-ran"
    inner = pickle.dumps(_Reduce(os.system, (f"touch {marker}",)), protocol=5)
    sealed = seal({"model": "default", "commits": 1, "served_fairness": inner}, KEY.encode())
    with pytest.raises(StateRefused, match="system is not allowed"):
        unseal(sealed, [KEY.encode()], "changelog")
    assert not marker.exists()


def test_a_sealed_record_that_does_not_unpickle_or_is_not_a_state_is_refused_as_load() -> None:
    payload = b'{"model":"default","commits":1}\n\x80\x05K\x01.'  # the pickle of 1
    import hashlib
    import hmac

    sealed = hmac.new(KEY.encode(), payload, hashlib.sha256).hexdigest().encode() + b"\n" + payload
    with pytest.raises(StateRefused, match="not a dict") as info:
        unseal(sealed, [KEY.encode()], "changelog")
    assert info.value.reason == "load"
    cut = payload + b"\x80"  # a truncated pickle after the STOP is fine; one cut before it is not
    cut = payload[:-2]
    sealed = hmac.new(KEY.encode(), cut, hashlib.sha256).hexdigest().encode() + b"\n" + cut
    with pytest.raises(StateRefused) as info:
        unseal(sealed, [KEY.encode()], "changelog")
    assert info.value.reason == "load"


def test_the_state_caps_apply() -> None:
    many = [[] for _ in range(200_000)]
    with pytest.raises(SecurityError, match="trainer state refused by the allow-list: the load allocated"):
        safe_pickle.loads_state(pickle.dumps({"model": "m", "x": many}, protocol=5), max_objects=50_000)
    assert len(safe_pickle.loads_state(pickle.dumps({"x": many}, protocol=5))["x"]) == 200_000  # type: ignore[index]


class _Mine:
    """A class of one's own, as a launcher registers a learner or a detector (README, "Extending")."""

    def __init__(self) -> None:
        self.n = 3


def test_entries_a_launcher_adds_are_admitted_in_states(monkeypatch: pytest.MonkeyPatch) -> None:
    sealed = _sealed(_Mine())
    with pytest.raises(StateRefused, match=r"_Mine is not allowed"):
        unseal(sealed, [KEY.encode()], "changelog")
    # A learner of one's own, added to the model list after import, is in its trainer states too.
    monkeypatch.setitem(pickle_allow.ALLOWED, (__name__, "_Mine"), "plain attributes")
    assert unseal(sealed, [KEY.encode()], "changelog")["lifecycle"].n == 3
    monkeypatch.delitem(pickle_allow.ALLOWED, (__name__, "_Mine"))
    monkeypatch.setitem(
        pickle_allow.STATE_ONLY, (__name__, "_Mine"), "plain attributes"
    )  # a detector's class
    assert unseal(sealed, [KEY.encode()], "changelog")["lifecycle"].n == 3
