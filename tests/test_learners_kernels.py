"""The compiled LR kernel (``learners.kernels``) gives River's answers and River's learned state, bit for bit.

Through :class:`learners.batch.BatchContext`, as the trainer's lifecycle calls it: the champion's prediction, then
its learn, on random streams with missing features, keys new mid-stream, ints, booleans, strings, NaN and inf
(rows the batch reads from its float block, and rows it cleans per event), ``None`` labels and a third label
(refused by a binary-only learner; a one-vs-rest switch for ``auto``, where the kernel steps aside). The twin
learns through River's own ``Learner.learn_one``; predictions are compared with ``predict_one`` and the
probability with ``predict_proba_one`` (exactly), the state after every label and the pickles at the end.
The kernel is on by default (``DRIFTLINE_NO_JIT=1`` turns it off): with it, the lifecycle's ``learn_batch``
makes the same releases, drift signals and guard decisions as ``learn_one`` on tests/test_learners_learn_batch.py's
replayed stream, ends with the same champion, pickle for pickle, and every read point (a judgement, a copy, a
checkpoint) sees River's state; without it (the pure-Python fallback) too.
"""

from __future__ import annotations

import math
import pickle
import random
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from driftline.config import LearnerSpec
from learners import kernels
from learners.batch import BatchContext
from learners.features import clean_features
from learners.specs import build_learner
from tests import test_learners_learn_batch as replay


@pytest.fixture(autouse=True)
def _jit_on(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DRIFTLINE_JIT", raising=False)  # on by default
    monkeypatch.delenv("DRIFTLINE_NO_JIT", raising=False)


PROPS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

value = st.one_of(
    st.floats(-5, 5),
    st.floats(-5, 5),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.none(),
    st.integers(-(10**6), 10**6),
    st.sampled_from(["red", "green"]),
)
example = st.dictionaries(st.sampled_from(["a", "b", "c", "colour", "rare"]), value, max_size=5)
label = st.sampled_from(["down", "up", "up", "down", None, "third"])


def _state(learner: Any) -> Any:
    """Everything the learn changes, in order: label counts, the scaler's statistics, weights, intercept, step."""
    scaler, lr = learner.model.steps.values()
    out = [learner._classes, list(learner._counts.items()), type(lr).__name__, learner._known]
    out += [list(scaler.counts.items()), list(scaler.means.items()), list(scaler.vars.items())]
    if hasattr(lr, "_weights"):
        out += [list(lr._weights.to_dict().items()), lr.intercept, lr.optimizer.n_iterations]
    return out


def _outcome(fn: Any) -> Any:
    try:
        return ("ok", fn())
    except Exception as exc:
        return ("error", type(exc))


def _dense(rng: random.Random, i: int) -> dict[str, Any]:
    """A usual event (so the weights move): float features, a key new at label 30, and one-hot colours."""
    x: dict[str, Any] = {"a": rng.gauss(0, 1), "b": rng.gauss(1, 2), "colour": rng.choice(["red", "green"])}
    if i >= 30:
        x["late"] = rng.gauss(5, 3)
    return x


@PROPS
@given(
    stream=st.lists(st.tuples(example, label), min_size=1, max_size=150),
    params=st.sampled_from([{}, {"multiclass": "binary"}, {"lr": 0.3}]),
    seed=st.integers(0, 3),
)
def test_kernel_predicts_and_learns_as_river(
    stream: list[tuple[dict[str, Any], Any]], params: dict[str, Any], seed: int
) -> None:
    rng = random.Random(seed)
    spec = LearnerSpec("logistic_regression", params)
    model, twin = build_learner(spec), build_learner(spec)
    rows = []
    for i, (x, y) in enumerate(stream):
        if i % 3 != 2:  # mostly dense float rows (the block path), the odd ones between
            x = _dense(rng, i)
            if i % 5 == 0:
                x = {k: v for k, v in x.items() if k != "b"}  # a missing feature
        if y == "third" and ((params.get("multiclass") != "binary" and i < 60) or rng.random() < 0.7):
            y = rng.choice(["down", "up"])  # a third label: rare, late in some streams
        rows.append((x, y))
    used = 0
    # In batches, as the trainer runs: each batch starts the kernel afresh from River's objects.
    for lo in range(0, len(rows), 37):
        chunk = rows[lo : lo + 37]
        batch = BatchContext([x for x, _ in chunk])
        for pos, (x, y) in enumerate(chunk):
            xc = batch.cleaned(pos)
            assert xc == clean_features(x)
            want = twin.predict_one(dict(xc), cleaned=True)
            assert batch.champion(model, xc) == want, (lo + pos, x)
            kernel = batch._champion.kernel
            if kernel is not None:
                used += 1
                p = kernel.proba(*batch._current_row(xc))
                q = twin.predict_proba_one(dict(xc), cleaned=True)[twin._classes[1]]
                assert p == q or (math.isnan(p) and math.isnan(q)), (lo + pos, x, p, q)
            got = _outcome(lambda xc=xc, y=y, batch=batch: batch.learn_champion(model, xc, y))
            ref = _outcome(lambda xc=xc, y=y: twin.learn_one(dict(xc), y, cleaned=True))
            assert got == ref, (lo + pos, x, y)
            if rng.random() < 0.3:  # a read point: River's objects hold what the kernel learned
                batch.sync()
                assert _state(model) == _state(twin), (lo + pos, x, y)
        batch.close()
        assert _state(model) == _state(twin), lo
    assert pickle.dumps(model) == pickle.dumps(twin)
    if len(rows) >= 60 and params.get("multiclass") == "binary":
        assert used > 0  # the kernel answered, not only the Python paths


def test_the_exponent_is_libm_pow_not_sqrt() -> None:
    """An update whose variance ``v`` has ``v ** 0.5`` (CPython: libm ``pow``) differ from ``sqrt(v)`` in the last
    bit: the compiled learn standardises with CPython's value (numba compiles a constant ``** 0.5`` to ``sqrt``)."""
    compiled = kernels.kernels()
    assert compiled is not None
    _, learn = compiled
    rng = random.Random(3)
    m0, v0, c0 = 0.25, 0.5, 3
    for _ in range(100_000):
        xi = rng.uniform(-5, 5)
        mean = m0 + (xi - m0) / (c0 + 1)
        v = v0 + ((xi - m0) * (xi - mean) - v0) / (c0 + 1)
        if v**0.5 != math.sqrt(v):
            break
    else:
        pytest.fail("no value found where pow and sqrt differ")
    S = np.array([[m0], [v0], [0.0], [1.0]])
    C = np.array([c0], dtype=np.int64)
    P = np.array([0.0, 0.01, 0.01, 1e12, 1.0, 1.0, 0.5])
    W, Wc = np.zeros((4, 1)), np.zeros(1, np.int64)
    cols, block = np.zeros(1, np.intp), np.array([[xi]])
    assert learn(S, C, cols, block, 0, P, True, W, Wc, cols, block, -1) == -1.0  # no next row asked
    assert (S[0, 0], S[1, 0], C[0]) == (mean, v, c0 + 1)
    assert W[3, 0] == (xi - mean) / v**0.5  # the transform River computes
    assert W[3, 0] != (xi - mean) / math.sqrt(v)


@pytest.mark.parametrize("env", [{"DRIFTLINE_JIT": "0"}, {"DRIFTLINE_NO_JIT": "1"}])
def test_on_by_default_and_off_with_no_jit(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> None:
    """With ``DRIFTLINE_NO_JIT=1`` or ``DRIFTLINE_JIT=0``: no kernel; the batch predicts and learns through
    ``learners.live_models``. With neither set: the kernel."""
    monkeypatch.delenv("DRIFTLINE_JIT", raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    assert kernels.kernels() is None
    model = build_learner(LearnerSpec("logistic_regression"))
    model.learn_one({"a": 0.0}, "up", cleaned=True)
    model.learn_one({"a": 1.0}, "down", cleaned=True)
    batch = BatchContext([{"a": 0.5}])
    xc = batch.cleaned(0)
    assert batch.champion(model, xc) == model.predict_one(xc, cleaned=True)
    assert batch._champion.kernel is None
    for k in env:
        monkeypatch.delenv(k)
    assert kernels.kernels() is not None
    batch = BatchContext([{"a": 0.5}])
    assert batch.champion(model, batch.cleaned(0)) == model.predict_one(xc, cleaned=True)
    assert batch._champion.kernel is not None


def test_the_python_fallback_decides_as_learn_one(monkeypatch: pytest.MonkeyPatch) -> None:
    """``DRIFTLINE_NO_JIT=1`` (the path without numba): the replayed stream's ``learn_batch`` gives ``learn_one``'s
    events and the same champion and served model, byte for byte, and the kernel never learns."""
    monkeypatch.setenv("DRIFTLINE_NO_JIT", "1")
    learned = []
    monkeypatch.setattr(kernels.KernelLR, "learn", lambda *a, **k: learned.append(1))
    spec = LearnerSpec("logistic_regression", {"multiclass": "binary"})
    rows = replay._stream("classification", seed=3)
    examples = replay._examples(spec, "classification", rows, seed=4)
    reference = [rows[i] for i in range(0, 600, 6)]
    one = replay._lifecycle(spec, "classification", reference)
    batched = replay._lifecycle(spec, "classification", reference)
    expected = [replay._outcome(r) for r in replay._run_one(one, examples)]
    assert [replay._outcome(r) for r in replay._run_batch(batched, examples, seed=5)] == expected
    assert pickle.dumps(batched.champion) == pickle.dumps(one.champion)
    assert pickle.dumps(batched.served_model) == pickle.dumps(one.served_model)
    assert not learned


def test_warm_for_only_the_kinds_the_kernel_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    """A train worker warms the LR kernel for an LR learner or challenger, never for a tree; a tree (or an
    ``auto`` pool, whose members include one) warms the naive Bayes kernel instead (session 19)."""
    from learners import nb_kernel

    calls, nb_calls = [], []
    monkeypatch.setattr(kernels, "warm", lambda: calls.append(1) or 0.5)
    monkeypatch.setattr(nb_kernel, "warm", lambda: nb_calls.append(1) or 0.25)
    assert kernels.warm_for(LearnerSpec("hoeffding_tree"), None) == 0.25
    assert kernels.warm_for(LearnerSpec("auto"), LearnerSpec("hoeffding_tree")) == 0.25
    assert not calls
    assert kernels.warm_for(LearnerSpec("hoeffding_tree"), LearnerSpec("logistic_regression")) == 0.75
    assert kernels.warm_for(LearnerSpec("logistic_regression"), None) == 0.5
    assert len(calls) == 2 and len(nb_calls) == 3


@pytest.mark.parametrize(
    "spec", [LearnerSpec("logistic_regression"), LearnerSpec("logistic_regression", {"multiclass": "binary"})]
)
def test_the_lifecycle_with_the_kernel_decides_as_learn_one(
    monkeypatch: pytest.MonkeyPatch, spec: LearnerSpec
) -> None:
    """The replayed stream of tests/test_learners_learn_batch.py (drifts, challengers, flipped labels, a reference
    set, stale and missing served answers, refused third labels, random batch sizes): ``learn_batch`` with the
    kernel gives ``learn_one``'s events at the same labels, and the same champion and served model, byte for
    byte."""
    learned = []
    learn = kernels.KernelLR.learn

    def counted(self: kernels.KernelLR, *args: Any, **kw: Any) -> None:
        learned.append(1)
        learn(self, *args, **kw)

    monkeypatch.setattr(kernels.KernelLR, "learn", counted)
    rows = replay._stream("classification", seed=3)
    examples = replay._examples(spec, "classification", rows, seed=4)
    reference = [rows[i] for i in range(0, 600, 6)]
    one = replay._lifecycle(spec, "classification", reference)
    batched = replay._lifecycle(spec, "classification", reference)
    expected = [replay._outcome(r) for r in replay._run_one(one, examples)]
    got = [replay._outcome(r) for r in replay._run_batch(batched, examples, seed=5)]
    assert got == expected
    assert one.served_version > 2 and (one.served_version, one.n_learned) == (
        batched.served_version,
        batched.n_learned,
    )
    assert pickle.dumps(batched.champion) == pickle.dumps(one.champion)
    assert pickle.dumps(batched.served_model) == pickle.dumps(one.served_model)
    assert len(learned) > len(examples) // 2  # the kernel learned most labels (not the Python paths)


def test_a_model_learned_outside_the_kernel_is_reloaded() -> None:
    """Between two labels something else teaches the champion (River's own learn, after the batch's ``sync``, as
    every reader outside the kernel does): the kernel's arrays are stale, so it reloads them from River's objects
    before answering."""
    model, twin = (
        build_learner(LearnerSpec("logistic_regression")),
        build_learner(LearnerSpec("logistic_regression")),
    )
    xs = [{"a": float(i % 7), "b": float(i % 3)} for i in range(40)]
    batch = BatchContext(xs)
    for pos, x in enumerate(xs):
        y = "up" if x["a"] > 3 else "down"
        xc = batch.cleaned(pos)
        assert batch.champion(model, xc) == twin.predict_one(x, cleaned=True)
        if pos % 4 == 0:  # not through the batch
            batch.sync()
            model.learn_one(dict(xc), y, cleaned=True)
        else:
            batch.learn_champion(model, xc, y)
        twin.learn_one(x, y, cleaned=True)
        batch.sync()
        assert _state(model) == _state(twin), pos
    assert batch._champion.kernel is not None


def test_river_is_written_at_sync_not_per_label_and_a_missed_sync_is_loud() -> None:
    """The kernel keeps what it learns in its arrays: River's objects are as they were until ``sync`` (or the
    batch's ``close``), then exactly River's own learn. A model learned outside the kernel while it holds
    labels (a read point without a sync) raises at the next sync instead of mixing the two states."""
    model, twin = (
        build_learner(LearnerSpec("logistic_regression")),
        build_learner(LearnerSpec("logistic_regression")),
    )
    xs = [{"a": float(i % 7), "b": float(i % 3)} for i in range(12)]
    ys = ["up" if x["a"] > 3 else "down" for x in xs]
    for i in (3, 4):  # both labels known ("down", "up"): the kernel learns the rest
        model.learn_one(dict(xs[i]), ys[i], cleaned=True)
        twin.learn_one(dict(xs[i]), ys[i], cleaned=True)
    # River's pipeline (the label counts are the Learner's, kept per label)
    before = pickle.dumps(model.model)
    batch = BatchContext(xs)
    for pos in range(2, 12):
        xc = batch.cleaned(pos)
        batch.champion(model, xc)
        batch.learn_champion(model, xc, ys[pos])
        twin.learn_one(dict(xs[pos]), ys[pos], cleaned=True)
    assert batch._champion.kernel is not None
    assert pickle.dumps(model.model) == before  # not written per label
    batch.close()
    assert pickle.dumps(model) == pickle.dumps(twin)
    batch = BatchContext(xs)
    xc = batch.cleaned(5)
    batch.champion(model, xc)
    batch.learn_champion(model, xc, ys[5])
    model.learn_one(dict(xs[6]), ys[6], cleaned=True)  # no sync before it: a bug in a read point
    with pytest.raises(RuntimeError, match="out of step"):
        batch.sync()


def test_every_read_point_sees_rivers_state(monkeypatch: pytest.MonkeyPatch) -> None:
    """The kernel writes River's objects back only when something reads the model. On the replayed stream, at
    every read point of ``learn_batch`` the model read is the one ``learn_one`` reads there, byte for byte:
    each judgement's candidate and baseline (``_judge``), each copy (a release's, probation's, a hold's, the
    sentinel's scheduled copies and a drift alarm's restart), and the lifecycle as a checkpoint pickles it
    after each batch (the batch's end)."""
    from learners import lifecycle as lifecycle_mod
    from learners.specs import Learner

    spec = LearnerSpec("logistic_regression", {"multiclass": "binary"})
    rows = replay._stream("classification", seed=3)
    examples = replay._examples(spec, "classification", rows, seed=4)
    reference = [rows[i] for i in range(0, 600, 6)]
    seen: list[tuple[str, bytes]] = []
    judge, copy, snapshot = lifecycle_mod.judge, Learner.copy, lifecycle_mod.snapshot
    inside_snapshot = [False]

    def judged(kind: str, ev: Any, guard: Any, *, candidate: Any, baseline: Any, **kw: Any) -> Any:
        seen.append(("judge", pickle.dumps((candidate, baseline))))
        return judge(kind, ev, guard, candidate=candidate, baseline=baseline, **kw)

    def copied(self: Any) -> Any:
        if not inside_snapshot[0]:
            seen.append(("copy", pickle.dumps(self)))
        return copy(self)

    def snapped(learner: Any) -> Any:
        # learn_batch freezes a release with learners.snapshot (learn_one with Learner.copy): the same read point.
        seen.append(("copy", pickle.dumps(learner)))
        inside_snapshot[0] = True
        try:
            return snapshot(learner)
        finally:
            inside_snapshot[0] = False

    monkeypatch.setattr(lifecycle_mod, "judge", judged)
    monkeypatch.setattr(Learner, "copy", copied)
    monkeypatch.setattr(lifecycle_mod, "snapshot", snapped)
    syncs = []
    sync = kernels.KernelLR.sync

    def counted(self: kernels.KernelLR) -> None:
        syncs.append(self._pending)
        sync(self)

    monkeypatch.setattr(kernels.KernelLR, "sync", counted)
    sizes = random.Random(5)
    bounds, k = [], 0
    while k < len(examples):
        k = min(len(examples), k + sizes.choice([7, 64, 500, 733]))
        bounds.append(k)

    def run(batched: bool) -> list[tuple[str, bytes]]:
        seen.clear()
        lc = replay._lifecycle(spec, "classification", reference)
        lo = 0
        for hi in bounds:
            if batched:
                lc.learn_batch(examples[lo:hi])
            else:
                replay._run_one(lc, examples[lo:hi])
            seen.append(("checkpoint", pickle.dumps(lc)))
            lo = hi
        return list(seen)

    one = run(False)
    assert not syncs
    batched = run(True)
    kinds = {kind for kind, _ in one}
    assert kinds == {"judge", "copy", "checkpoint"}
    assert [kind for kind, _ in batched] == [kind for kind, _ in one]
    for n, (a, b) in enumerate(zip(batched, one, strict=True)):
        assert a == b, (n, a[0])
    assert sum(1 for p in syncs if p) > 20  # the kernel held labels at many read points, and wrote them then


def test_no_cache_locator_compiles_per_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """A read-only install with no writable cache dir: numba refuses ``cache=True`` (``RuntimeError: cannot cache
    function ...: no locator available``, at the decoration); the kernels are compiled per process instead, with
    the same answers. (Checked for real in a read-only bind mount, BENCHMARKS.md session 17.)"""
    import numba

    real = numba.njit

    def njit(*args: Any, cache: bool = False, **kw: Any) -> Any:
        if cache:
            raise RuntimeError("cannot cache function '_learn_py': no locator available for file")
        return real(*args, cache=cache, **kw)

    monkeypatch.setattr(numba, "njit", njit)
    monkeypatch.setattr(kernels, "_tried", False)
    monkeypatch.setattr(kernels, "_compiled", None)
    assert kernels.warm() > 0.0
    compiled = kernels.kernels()
    assert compiled is not None
    predict, _ = compiled
    S = np.array([[0.0], [1.0], [2.0], [1.0]])  # mean 0, variance 1, weight 2, learned
    P = np.array([0.5, 0.01, 0.01, 1e12, 1.0, 1.0, 0.5])
    z = 2.0 * 1.5 + 0.5
    assert predict(S, np.zeros(1, np.intp), np.array([[1.5]]), 0, P) == 1.0 / (1.0 + math.exp(-z))
