"""``PairedEvidence``'s inlined classification pair (no segment) updates its three e-processes with one shared
mean and variance per pair: the wealth, counts and sums must equal, bit for bit, three ``EProcess`` objects fed
the same differences one ``add`` at a time. And the ADWIN error monitor, which reads ADWIN's estimation from its
helper, reports River's own figures."""

from __future__ import annotations

import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from driftline.config import GuardConfig
from learners.guard import EProcess, PairedEvidence

PROPS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
answer = st.sampled_from(["up", "down", None])


def _reference(config: GuardConfig, pairs: list[tuple[str, str | None, str | None]]) -> list[EProcess]:
    tests = [EProcess(config.non_inferiority_margin), EProcess(-config.superiority_margin)]
    tests.append(EProcess(-config.hold_margin))
    for y, cand, base in pairs:
        d = (0.0 if cand == y else 1.0) - (0.0 if base == y else 1.0)
        for test in tests:
            test.add(d)
    return tests


def _tests(ev: PairedEvidence) -> list[tuple[int, float, float, float]]:
    return [(t.n, t.s, t.s2, t.log_wealth) for t in (ev.not_worse, ev.better, ev.much_better)]


@PROPS
@given(
    pairs=st.lists(st.tuples(st.sampled_from(["up", "down"]), answer, answer), max_size=300),
    margins=st.sampled_from([GuardConfig(), GuardConfig(non_inferiority_margin=0.2, hold_margin=0.01)]),
)
def test_the_shared_bet_equals_three_separate_e_processes(
    pairs: list[tuple[str, str | None, str | None]], margins: GuardConfig
) -> None:
    ev = PairedEvidence("classification", margins)
    for y, cand, base in pairs:
        ev.add(y, cand, base)
    want = _reference(margins, pairs)
    assert _tests(ev) == [(t.n, t.s, t.s2, t.log_wealth) for t in want]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_long_stream_with_clear_and_doubtful_stretches(seed: int) -> None:
    rng = random.Random(seed)
    config = GuardConfig()
    pairs = []
    for i in range(5000):
        y = rng.choice(["up", "down"])
        good = 0.6 if (i // 700) % 2 else 0.98  # the candidate alternates between better and worse
        other = "down" if y == "up" else "up"
        pairs.append((y, y if rng.random() < good else other, y if rng.random() < 0.7 else other))
    ev = PairedEvidence("classification", config)
    for y, cand, base in pairs:
        ev.add(y, cand, base)
    want = _reference(config, pairs)
    assert _tests(ev) == [(t.n, t.s, t.s2, t.log_wealth) for t in want]
    assert ev.not_worse.log_wealth != 0.0 and ev.much_better.log_wealth != 0.0  # the bets were really placed


def test_the_error_monitor_reports_adwin_s_own_estimations() -> None:
    """The ADWIN error monitor reads the estimation from River's helper (total / width) instead of its property:
    the alarms and their before/after figures must be what ``ADWIN.estimation`` gives."""
    from river.drift import ADWIN

    from driftline.config import DriftConfig
    from learners.drift import ErrorDriftMonitor

    rng = random.Random(7)
    config = DriftConfig()
    monitor, twin = ErrorDriftMonitor(config), ADWIN(delta=config.adwin_delta)
    got, want = [], []
    for i in range(6000):
        error = 1.0 if rng.random() < (0.1 if (i // 1500) % 2 == 0 else 0.45) else 0.0
        got += [(s.index, s.details) for s in monitor.update(error, i)]
        before = twin.estimation
        twin.update(error)
        if twin.drift_detected and i + 1 >= config.adwin_grace and twin.estimation > before:
            details = {"error_before": f"{before:.4f}", "error_after": f"{twin.estimation:.4f}"}
            want.append((i, {**details, "width": str(twin.width)}))
    assert got == want
    assert len(got) >= 2  # the error rose twice: both alarms were raised and compared


@PROPS
@given(
    history=st.lists(st.tuples(st.sampled_from(["up", "down"]), answer, answer), min_size=1, max_size=200),
    pairs=st.lists(st.tuples(st.sampled_from(["up", "down"]), answer, answer), max_size=300),
    cap=st.floats(min_value=-3.0, max_value=3.0),
)
def test_after_a_carried_release_the_two_fresh_tests_share_a_bet(
    history: list[tuple[str, str | None, str | None]],
    pairs: list[tuple[str, str | None, str | None]],
    cap: float,
) -> None:
    """As ``policies.Lineage.released`` carries it: not_worse keeps its history (its wealth capped), better and
    much_better start afresh together. Each must still equal its own ``EProcess`` fed one ``add`` at a time."""
    config = GuardConfig()
    old = PairedEvidence("classification", config)
    for y, cand, base in history:
        old.add(y, cand, base)
    ev = PairedEvidence("classification", config)
    kept = old.not_worse
    kept.log_wealth = min(kept.log_wealth, cap)
    ev.not_worse = kept
    want_nw = EProcess(kept.m)
    want_nw.n, want_nw.s, want_nw.s2, want_nw.log_wealth = kept.n, kept.s, kept.s2, kept.log_wealth
    want = [want_nw, EProcess(-config.superiority_margin), EProcess(-config.hold_margin)]
    for y, cand, base in pairs:
        ev.add(y, cand, base)
        d = (0.0 if cand == y else 1.0) - (0.0 if base == y else 1.0)
        for test in want:
            test.add(d)
    assert _tests(ev) == [(t.n, t.s, t.s2, t.log_wealth) for t in want]


def _old_add_classification(self: PairedEvidence, y: object, cand: object, base: object) -> None:
    """``PairedEvidence._add_classification`` as it was before session 22 (the reference for the tightened one)."""
    from learners.guard import _add_shared

    self.n += 1
    self.label_counts[y] = self.label_counts.get(y, 0) + 1
    self.pred_counts[cand] = self.pred_counts.get(cand, 0) + 1
    if not self.base_varied:
        self._note_base(base)
    cand_ok, base_ok = bool(cand == y), bool(base == y)
    self.disagree += cand != base and base is not None
    self.cand_right += cand_ok
    self.base_right += base_ok
    self.cand_only += cand_ok and not base_ok
    self.base_only += base_ok and not cand_ok
    d = (0.0 if cand_ok else 1.0) - (0.0 if base_ok else 1.0)
    tests = (self.not_worse, self.better, self.much_better)
    first = tests[0]
    n, s, s2 = first.n, first.s, first.s2
    if tests[1].n == n == tests[2].n and tests[1].s == s == tests[2].s and tests[1].s2 == s2 == tests[2].s2:
        _add_shared(tests, n, s, s2, d)
    else:
        first.add(d)
        pair = (tests[1], tests[2])
        n, s, s2 = pair[0].n, pair[0].s, pair[0].s2
        if pair[1].n == n and pair[1].s == s and pair[1].s2 == s2:
            _add_shared(pair, n, s, s2, d)
        else:
            for test in pair:
                test.add(d)
    self.sum_d += d
    self.sum_d2 += d * d
    self.sum_base += 0.0 if base_ok else 1.0


def _state(ev: PairedEvidence) -> list[tuple[str, type, object]]:
    """Every attribute with its type (an int counter must stay an int), and the e-processes' slots."""
    out = [
        (k, type(v), v)
        for k, v in sorted(vars(ev).items())
        if k not in ("not_worse", "better", "much_better")
    ]
    return out + [(f"test{i}", tuple, t) for i, t in enumerate(_tests(ev))]


@PROPS
@given(
    pairs=st.lists(st.tuples(st.sampled_from(["up", "down"]), answer, answer), max_size=200),
    margins=st.sampled_from([GuardConfig(), GuardConfig(non_inferiority_margin=0.2, hold_margin=0.01)]),
    carried=st.sampled_from([0, 1, 2]),
    history=st.lists(st.sampled_from([-1.0, 0.0, 1.0]), max_size=30),
)
def test_the_tightened_classification_pair_equals_the_previous_one(
    pairs: list[tuple[str, str | None, str | None]], margins: GuardConfig, carried: int, history: list[float]
) -> None:
    """Session 22's ``_add_classification`` (branches instead of bool sums, the shared bet inline, ``min``/``max``
    as comparisons) leaves every counter, sum, dict and wealth as the previous code did, bit for bit and of the same
    types, in step and out of step: ``carried`` 1 gives not_worse a longer history (a carried release), 2 all three
    different histories (the per-test path)."""
    new, old = PairedEvidence("classification", margins), PairedEvidence("classification", margins)
    for ev in (new, old):
        for d in history:
            if carried >= 1:
                ev.not_worse.add(d)
            if carried == 2:
                ev.much_better.add(-d)
    for y, cand, base in pairs:
        new.add(y, cand, base)
        _old_add_classification(old, y, cand, base)
        assert _state(new) == _state(old)


def test_numpy_answers_keep_the_counters_python_ints() -> None:
    """A model answering numpy booleans: the counters stay what the previous code made of them."""
    np = pytest.importorskip("numpy")
    rng = random.Random(3)
    new, old = PairedEvidence("classification"), PairedEvidence("classification")
    for _ in range(500):
        y, cand, base = (np.bool_(rng.random() < 0.5) for _ in range(3))
        new.add(y, cand, base)
        _old_add_classification(old, y, cand, base)
    assert _state(new) == _state(old)
    assert new.not_worse.log_wealth != 0.0
