"""A withheld release changes nothing but the withheld count (fixes33b, item 3): an operator's promote, rollback or
restore whose release is withheld leaves the champion, the held candidate and the challenger as they were (the
champion was switched although nothing was served); an incremental release withheld keeps a candidate held for the
operator (it was dropped); and the trainer's withheld state is in its checkpoint (status lost it at a restart) and
cleared by the next release published."""

from __future__ import annotations

import random
import tempfile

import pytest

from driftline.config import DriftConfig, GuardConfig, LearnerSpec
from driftline.errors import SecurityError
from learners import safe_pickle
from learners.guard import Decision
from learners.lifecycle import ModelLifecycle, Release, Withheld
from learners.specs import Learner

KEY = b"k" * 32


def _lifecycle() -> ModelLifecycle:
    lc = ModelLifecycle(
        "m",
        "classification",
        LearnerSpec("logistic_regression"),
        None,
        DriftConfig(),
        GuardConfig(),
        release_every=25,
    )
    lc.check_artifacts = True  # as the train worker sets it
    return lc


def _learn(lc: ModelLifecycle, rng: random.Random, start: int, n: int) -> list:
    events: list = []
    for i in range(start, start + n):
        x = {"a": rng.uniform(-1, 1), "b": rng.uniform(-1, 1)}
        events += lc.learn_one(x, int(x["a"] > 0), index=i)
    return events


@pytest.fixture
def refuse(monkeypatch) -> dict[str, bool]:
    """While ``refuse["now"]``, the artifact check refuses every release, as the scorers' loader would a model
    past its caps."""
    state = {"now": False}
    real = safe_pickle.check_loadable

    def check(model: object, **kw: object) -> tuple[int, bool]:
        if state["now"]:
            raise SecurityError("model artifact refused by the allow-list: refused by the test")
        return real(model, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(safe_pickle, "check_loadable", check)
    return state


def test_an_operators_command_whose_release_is_withheld_changes_nothing(refuse: dict[str, bool]) -> None:
    lc = _lifecycle()
    assert isinstance(lc.initial_release(), Release)
    events = _learn(lc, random.Random(0), 0, 120)
    assert [e for e in events if isinstance(e, Release)] and lc.rollback_version is not None  # on probation
    lc._held = (lc._lineage.copy(), Decision("hold", "incremental", "champion", text="held by the test"))
    lc._start_challenger(120)
    champion, held, challenger = lc.champion, lc._held, lc.challenger
    served, version, n_learned = lc.served_model, lc.served_version, lc.n_learned
    refuse["now"] = True
    commands = [
        ("promote", {"candidate": "held"}),
        ("promote", {"candidate": "challenger"}),
        ("promote", {"candidate": "champion"}),
        ("rollback", {}),
    ]
    for command, args in commands:
        (event,) = lc.apply_control(command, args)
        assert isinstance(event, Withheld), command
        assert lc.champion is champion and lc._held is held and lc.challenger is challenger, command
        assert (lc.served_model, lc.served_version, lc.n_learned) == (served, version, n_learned), command
    restored = lc.adopt(lc.served_model.copy(), version=1, reason="manual", n_learned=3)
    assert isinstance(restored, Withheld)
    assert lc.champion is champion and lc.challenger is challenger and lc.n_learned == n_learned
    # Loadable again: the same command is made, and changes what it says.
    refuse["now"] = False
    (event,) = lc.apply_control("promote", {"candidate": "held"})
    assert isinstance(event, Release) and event.version == version + 1
    assert lc.champion is held[0].model and lc._held is None and lc.challenger is challenger


def test_an_incremental_release_withheld_keeps_the_candidate_held_for_the_operator(
    refuse: dict[str, bool],
) -> None:
    lc = _lifecycle()
    lc.initial_release()
    _learn(lc, random.Random(0), 0, 120)
    lc._held = (lc._lineage.copy(), Decision("hold", "incremental", "champion", text="held by the test"))
    refuse["now"] = True
    events = _learn(lc, random.Random(1), 120, 200)
    assert [e for e in events if isinstance(e, Withheld) and e.reason == "incremental"]
    assert not [
        e for e in events if isinstance(e, Decision) and e.outcome == "hold"
    ]  # the held one is the test's
    assert lc._held is not None, "a withheld incremental release dropped the candidate held for the operator"
    refuse["now"] = False
    (event,) = lc.apply_control("promote", {"candidate": "held"})
    assert isinstance(event, Release) and event.reason == "manual"


def test_the_withheld_state_survives_a_restart_and_a_published_release_clears_it(monkeypatch) -> None:
    from connectors.batch_source import RawRecord
    from driftline.settings import load_settings
    from streams.train import seal, unseal
    from tests.trainer_helpers import offline_trainer

    key = "withheld-state-signing-key-of-32-bytes!!"
    settings = load_settings(
        environ={},
        overrides={
            "model.signing_key": key,
            "state_dir": tempfile.mkdtemp(prefix="withheld-state-"),
            "model.learner": {"name": "logistic_regression", "params": {"multiclass": "binary"}},
        },
    )
    monkeypatch.setattr(safe_pickle, "MAX_PICKLE_BYTES", 6_000)
    trainer = offline_trainer(settings)
    trainer.start(None, 0)
    rng = random.Random(5)

    def records(start: int, n: int) -> list:
        out = []
        for i in range(start, start + n):
            x = {"f0": rng.gauss(0.0, 1.0), f"n{i}": 1.0}  # a new feature name per label: the model grows
            example = {"id": f"e{i}", "model": "default", "features": x, "label": x["f0"] > 0, "event_ts": i}
            out.append((RawRecord("driftline.training", 0, i, b"default", b"", i), example))
        return out

    batch = records(0, 600)
    for k in range(0, len(batch), 50):
        trainer.process(batch[k : k + 50])
    assert trainer.withheld is not None and trainer.withheld_count >= 1
    # The next owner (or this one restarted) restores the sealed state: status still says it.
    state = unseal(seal(trainer.state(), key.encode()), [key.encode()], "test")
    successor = offline_trainer(settings)
    successor.start(state, trainer.lifecycle.served_version)
    assert successor.withheld == trainer.withheld and successor.withheld_count == trainer.withheld_count
    written: dict[str, object] = {}

    class Status:
        def eval(self, script: str, n: int, key: str, commits: int, *pairs: object) -> int:
            written.update(zip(pairs[::2], pairs[1::2], strict=True))  # type: ignore[arg-type]
            return 1

    successor._redis = Status()
    successor.publish_status()
    assert written["withheld"], "the status written after a restart lost the withheld release"
    # A state saved before the withheld release was kept restores without one.
    del state["withheld"], state["withheld_count"]
    older = offline_trainer(settings)
    older.start(state, trainer.lifecycle.served_version)
    assert older.withheld is None and older.withheld_count == 0
    # The model fits again (the cap raised): the next release published clears it, and status says nothing.
    monkeypatch.setattr(safe_pickle, "MAX_PICKLE_BYTES", 128 * 1024 * 1024)
    before = successor.released
    batch = records(600, 600)
    for k in range(0, len(batch), 50):
        successor.process(batch[k : k + 50])
    assert successor.released > before
    assert successor.withheld is None and successor.withheld_count == 0
    successor.publish_status()
    assert written["withheld"] == ""


def test_a_challenger_whose_promotion_is_withheld_is_dropped_with_a_decision_saying_why(
    refuse: dict[str, bool],
) -> None:
    # fixes34 kept a challenger whose promotion was withheld and judged it again every 25 pairs until
    # guard.max_examples (3,000), its artifact checked again at each, although what withholds a release (a size or
    # object cap, the allow-list) does not change while the trainer runs (session 35). It goes, and the decision
    # that drops it (audited by the trainer as every decision) says why and what to do.
    rng = random.Random(1)
    lc = ModelLifecycle(
        "m",
        "classification",
        LearnerSpec("logistic_regression"),
        None,
        DriftConfig(),
        GuardConfig(),
        release_every=10**6,  # no incremental releases: only the challenger can adapt
    )
    lc.check_artifacts = True
    assert isinstance(lc.initial_release(), Release)
    judged: list[str] = []
    judge = lc._judge

    def counting(candidate: str, *args: object, **kw: object) -> Decision:
        judged.append(candidate)
        return judge(candidate, *args, **kw)  # type: ignore[arg-type]

    lc._judge = counting  # type: ignore[method-assign]

    def label(rotated: bool) -> list:
        x = {"a": rng.uniform(-1, 1), "b": rng.uniform(-1, 1)}
        return lc.learn_one(x, int(x["a"] + (-2.0 if rotated else 0.5) * x["b"] > 0))

    for _ in range(1500):
        label(False)
    champion, version = lc.champion, lc.served_version
    refuse["now"] = True  # the concept rotates; every release is refused from now on
    for _ in range(3000):
        events = label(True)
        if any(isinstance(e, Withheld) and e.reason == "challenger" for e in events):
            break
    else:
        raise AssertionError("no challenger promotion was decided (the test's drift did not start one)")
    withheld, dropped = events[-2:]
    assert isinstance(withheld, Withheld) and withheld.problem == "allow_list"
    assert isinstance(dropped, Decision)
    assert (dropped.outcome, dropped.reason, dropped.candidate) == ("reject", "challenger", "challenger")
    assert dropped.checks["loadable"] is False and dropped.evidence  # the promotion's evidence, kept
    assert dropped.text.startswith(
        "challenger dropped: the guard promoted it but no scorer could load its release"
    )
    assert (
        "allow_list: model artifact refused by the allow-list" in dropped.text
        and "model.challenger" in dropped.text
    )
    assert lc.challenger is None and lc.champion is champion and lc.served_version == version
    # Not judged again: a new challenger (a new alarm's) needs challenger_grace + min_examples labels first.
    judged.clear()
    for _ in range(GuardConfig().challenger_grace + GuardConfig().min_examples - 1):
        label(True)
    assert "challenger" not in judged, judged


def test_a_new_model_at_a_refused_ones_address_is_checked_not_taken_for_it(refuse: dict[str, bool]) -> None:
    # A refusal was remembered by id() of the refused model: an operator's restore refused, and the next model
    # allocated where it was freed (the same id, within WITHHELD_RECHECK labels) was refused unchecked although
    # its artifact loads (fixes34, item 3).
    lc = _lifecycle()
    lc.initial_release()
    _learn(lc, random.Random(0), 0, 60)
    source = (
        lc.served_model.copy()
    )  # made now: nothing else is allocated between the refusal and the new model
    refuse["now"] = True
    model = lc.served_model.copy()
    refused_id = id(model)
    first = lc.adopt(model, version=1, reason="manual", n_learned=3)
    assert isinstance(first, Withheld) and first.fresh
    del model  # the refused model is gone; its address is free
    refuse["now"] = False
    # A new model at the same address: CPython's allocator hands the freed block to a later object of its size
    # (bare Learner objects, each held so the next one takes another block, until one lands there).
    blanks = []
    for _ in range(100_000):
        candidate = Learner.__new__(Learner)
        if id(candidate) == refused_id:
            break
        blanks.append(candidate)
    assert id(candidate) == refused_id, "no new model reused the refused one's id"
    candidate.__dict__.update(source.__dict__)  # a loadable model: the served one's copy
    event = lc.adopt(candidate, version=1, reason="manual", n_learned=3)
    assert isinstance(event, Release), "a loadable model was refused as the one refused before at its address"
    assert lc.champion is candidate


def test_a_refused_champion_is_still_remembered_and_a_checkpoint_does_not_carry_the_refusal(
    refuse: dict[str, bool],
) -> None:
    import pickle

    lc = _lifecycle()
    lc.initial_release()
    refuse["now"] = True
    events = _learn(lc, random.Random(0), 0, 200)
    withheld = [e for e in events if isinstance(e, Withheld)]
    assert withheld and withheld[0].fresh and not any(e.fresh for e in withheld[1:])
    restored = pickle.loads(pickle.dumps(lc))  # the trainer's checkpoint
    assert restored._withheld is None
    again = [e for e in _learn(restored, random.Random(1), 200, 60) if isinstance(e, Withheld)]
    assert again and again[0].fresh  # checked again once after a restart, then remembered
    assert not any(e.fresh for e in again[1:])


def test_a_withheld_challenger_does_not_make_the_withheld_champion_a_fresh_refusal_again(
    refuse: dict[str, bool],
) -> None:
    # One refusal record for the lifecycle: the challenger's withheld promotion replaced the champion's record, so
    # the champion's next incremental release was checked in full again and counted as a new refusal (session 36).
    rng = random.Random(1)
    lc = _lifecycle()
    assert isinstance(lc.initial_release(), Release)

    def label(rotated: bool) -> list:
        x = {"a": rng.uniform(-1, 1), "b": rng.uniform(-1, 1)}
        return lc.learn_one(x, int(x["a"] + (-2.0 if rotated else 0.5) * x["b"] > 0))

    for _ in range(1500):
        label(False)
    refuse["now"] = True  # the concept rotates; every release is refused from now on
    seen: list[Withheld] = []
    for _ in range(3000):
        events = label(True)
        seen += [e for e in events if isinstance(e, Withheld)]
        if any(e.reason == "challenger" for e in seen):
            break
    else:
        raise AssertionError("no challenger promotion was decided (the test's drift did not start one)")
    champion = [e for e in seen if e.reason == "incremental"]
    assert champion and champion[0].fresh, "the champion's releases were not withheld before the challenger's"
    assert [e.fresh for e in seen if e.reason == "challenger"] == [True]
    after: list[Withheld] = []
    for _ in range(200):  # fewer labels than WITHHELD_RECHECK since the champion's refusal
        after += [e for e in label(True) if isinstance(e, Withheld) and e.reason == "incremental"]
    assert after, "no incremental release was attempted after the challenger went"
    assert not any(e.fresh for e in after), "the withheld champion was counted as a new refusal again"
