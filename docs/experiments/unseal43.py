"""Session 43 (helper unseal43): what a trainer's sealed state pickles, and what reading it restricted costs.

``globals``: builds a real trainer (tests.trainer_helpers.offline_trainer) for every learner kind and task of
tests/learner_kinds.py, learns a drifting stream (a challenger, probation, the served-fairness window of a segment
feature), pauses learning and holds a few examples, then pickles ``Trainer.state()`` as ``streams.train.seal`` does
and lists every (module, name) global the pickle names (a recording unpickler), with the state's size and the memory
blocks its load allocates. ``time``: unseal time, the HMAC check and plain pickle.loads (before) against the
restricted loader (now), best of 5, for a logistic-regression state (n labels) and big Hoeffding-tree / ARF states
(4 x n labels). ``blocks``: the memory blocks a 10-tree ARF's state and its champion's model pickle allocate when
loaded, per pickle byte.

    PYTHONPATH=$PWD nice -n 5 /work/main/.venv/bin/python docs/experiments/unseal43.py globals [--n 1500]
    PYTHONPATH=$PWD nice -n 5 /work/main/.venv/bin/python docs/experiments/unseal43.py time --n 2000
    PYTHONPATH=$PWD nice -n 5 /work/main/.venv/bin/python docs/experiments/unseal43.py blocks --n 20000
"""

from __future__ import annotations

import argparse
import json
import pickle
import sys
import tempfile
import time
from typing import Any

KEY = "unseal43-experiment-signing-key-32-bytes!"


def learned(spec: Any, task: str, n: int) -> Any:
    """tests.trainer_helpers.learned_trainer: a drifting stream learned, learning paused, 20 examples held."""
    from tests.trainer_helpers import learned_trainer

    return learned_trainer(spec, task, n, KEY, tempfile.mkdtemp(prefix="unseal43-"))


def globals_of(data: bytes) -> set[tuple[str, str]]:
    """Every (module, name) global the pickle ``data`` names (our own bytes: unpickled plainly to find them)."""
    from tests.learner_kinds import load_recording

    found: set[tuple[str, str]] = set()
    load_recording(data, found)
    return found


def blocks_of(data: bytes) -> int:
    before = sys.getallocatedblocks()
    kept = pickle.loads(data)
    grown = sys.getallocatedblocks() - before
    del kept
    return grown


def cmd_globals(n: int) -> None:
    from tests.learner_kinds import specs

    seen: dict[tuple[str, str], list[str]] = {}
    sizes = []
    for kid, spec, task in specs():
        t0 = time.perf_counter()
        trainer = learned(spec, task, n)
        raw = pickle.dumps(trainer.state(), protocol=5)
        for g in globals_of(raw):
            seen.setdefault(g, []).append(kid)
        fair = trainer.state()["served_fairness"]
        if isinstance(fair, bytes):
            for g in globals_of(fair):
                seen.setdefault(g, []).append(kid + "(fairness)")
        lc = trainer.lifecycle
        sizes.append((kid, len(raw), blocks_of(raw), lc.challenger is not None, time.perf_counter() - t0))
        print(
            kid,
            len(raw),
            sizes[-1][2],
            "challenger" if sizes[-1][3] else "",
            f"{sizes[-1][4]:.1f}s",
            flush=True,
        )
    print(json.dumps({"globals": sorted([[*g, len(v)] for g, v in seen.items()])}))


def old_unseal(sealed: bytes, key: bytes) -> dict[str, Any]:
    """streams.train.unseal before session 43: the HMAC check, then plain pickle.loads (the fairness window too)."""
    from streams.train import sealed_by

    assert sealed_by(sealed, [key])
    state: dict[str, Any] = pickle.loads(sealed.partition(b"\n")[2].partition(b"\n")[2])
    if isinstance(state.get("served_fairness"), bytes):
        state["served_fairness"] = pickle.loads(state["served_fairness"])
    return state


def best_of(f: Any, repeat: int = 5) -> float:
    out = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        f()
        out.append(time.perf_counter() - t0)
    return min(out)


def cmd_time(n: int) -> None:
    from driftline.config import LearnerSpec
    from streams.train import seal, unseal

    key = KEY.encode()
    cases = [
        ("logistic_regression", LearnerSpec("logistic_regression"), n),
        ("hoeffding_tree", LearnerSpec("hoeffding_tree", {"grace_period": 50}), n * 4),
        ("adaptive_random_forest", LearnerSpec("adaptive_random_forest", {"n_models": 10}), n * 4),
    ]
    for name, spec, m in cases:
        trainer = learned(spec, "classification", m)
        sealed = seal(trainer.state(), key)
        payload = sealed.partition(b"\n")[2].partition(b"\n")[2]
        plain = best_of(lambda s=sealed: old_unseal(s, key))
        restricted = best_of(lambda s=sealed: unseal(s, [key], "bench"))
        print(
            json.dumps(
                {
                    "state": name,
                    "labels": m,
                    "bytes": len(payload),
                    "plain_ms": round(plain * 1e3, 2),
                    "restricted_ms": round(restricted * 1e3, 2),
                }
            ),
            flush=True,
        )


def cmd_blocks(n: int) -> None:
    from driftline.config import LearnerSpec
    from learners import safe_pickle

    trainer = learned(LearnerSpec("adaptive_random_forest", {"n_models": 10}), "classification", n)
    raw = pickle.dumps(trainer.state(), protocol=5)
    model = safe_pickle.compact(trainer.lifecycle.champion)
    state_blocks, model_blocks = blocks_of(raw), blocks_of(model)
    print(
        json.dumps(
            {
                "labels": n,
                "state_bytes": len(raw),
                "state_blocks": state_blocks,
                "per_byte": round(state_blocks / len(raw), 3),
                "champion_compact_bytes": len(model),
                "champion_blocks": model_blocks,
                "model_per_byte": round(model_blocks / len(model), 3),
            }
        )
    )


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("what", choices=["globals", "time", "blocks"])
    p.add_argument("--n", type=int, default=1500)
    a = p.parse_args()
    {"globals": cmd_globals, "time": cmd_time, "blocks": cmd_blocks}[a.what](a.n)


if __name__ == "__main__":
    main()
