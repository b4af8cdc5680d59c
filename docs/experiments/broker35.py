"""Broker kills at fixed times against a running pipeline, then the accounting of chaos32 (helper broker35, session 35).

As a user would (the ``driftline`` command line in separate processes, see ``chaos32.py``): the stack, five workers
(score x2, join, train x2 by default), ``driftline produce synthetic``; at each ``--kill-at`` second the broker is
killed -9 and ``driftline stack up`` brings it back after ``--down`` seconds. While it runs, every trainer's metrics
are scraped each second: the *stall* after a kill is the time from the broker being back (``stack up`` returned) to
the trainers' committed transactions (``driftline_trainer_transactions_total{outcome="committed"}``, summed) and
learned labels (``driftline_n_learned``) moving again. Then the pipeline drains and every record is accounted
(duplicate predictions, events without a prediction, labels learned; chaos32's ``account``).

    PYTHONPATH=. python docs/experiments/broker35.py --events 12000 --rate 200 --kill-at 25 \
        --kafka-port 15092 --redis-port 15379 --state-dir /tmp/broker35-state
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import chaos32  # the sibling experiment: its processes and accounting
from chaos32 import PY, TREE, Chaos, Run, log, metric


def trainer_progress(chaos: Chaos) -> tuple[float, float]:
    """(committed transactions, labels learned) summed over the live trainers (scraped now)."""
    committed = learned = 0.0
    for w in chaos.workers:
        if w.role not in ("train", "all"):
            continue
        w.scrape()
        text = w.last_metrics.get(w.incarnation, "")
        committed += metric(text, "driftline_trainer_transactions_total", outcome="committed")
        learned += metric(text, "driftline_n_learned")
    return committed, learned


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=12000)
    ap.add_argument("--rate", type=float, default=200.0)
    ap.add_argument("--label-delay", type=int, default=300)
    ap.add_argument("--kill-at", default="25", help="seconds after the first events, comma-separated")
    ap.add_argument("--down", type=float, default=3.0, help="seconds the broker stays down")
    ap.add_argument("--kafka-port", type=int, default=15092)
    ap.add_argument("--redis-port", type=int, default=15379)
    ap.add_argument("--metrics-base", type=int, default=15500)
    ap.add_argument("--state-dir", type=Path, default=Path("/tmp/broker35-state"))
    ap.add_argument("--out", type=Path, default=Path("/tmp/broker35-runs"))
    ap.add_argument("--roles", default="score,score,join,train,train")
    ap.add_argument("--seed", type=int, default=35)
    ap.add_argument("--drain-timeout", type=float, default=300.0)
    a = ap.parse_args()
    out = a.out / f"run-{int(time.time())}"
    out.mkdir(parents=True, exist_ok=True)
    run = Run(a.seed, a.events, a.rate, a.label_delay, a.kafka_port, a.redis_port, a.state_dir, out)
    run.prefix = f"broker35.{int(time.time()) % 100000}."
    run.env["DRIFTLINE_TOPIC_PREFIX"] = run.prefix
    log(f"prefix {run.prefix}, logs in {out}")
    chaos = Chaos(run, tuple(a.roles.split(",")))
    for w in chaos.workers:
        w.port = a.metrics_base + w.slot
    chaos.stack_up()
    chaos.t0 = time.monotonic()
    for w in chaos.workers:
        w.start()
    time.sleep(15)
    produce_log = open(out / "produce.log", "wb")  # noqa: SIM115
    producer = subprocess.Popen(
        [PY, "-m", "streams.cli", "produce", "synthetic", "--stream", "sea-drift", "--events", str(a.events),
         "--label-delay", str(a.label_delay), "--rate", str(a.rate), "--seed", str(a.seed),
         "--id-prefix", f"b{a.seed}-", "--json"],
        env=run.env, stdout=produce_log, stderr=subprocess.STDOUT, cwd=TREE,
    )  # fmt: skip
    chaos.wait_first_events()
    chaos.t0 = time.monotonic()
    samples: list[tuple[float, float, float]] = []
    stop = threading.Event()

    def sampler() -> None:
        while not stop.wait(1.0):
            with chaos.lock:
                c, n = trainer_progress(chaos)
            samples.append((time.monotonic() - chaos.t0, c, n))

    th = threading.Thread(target=sampler, daemon=True)
    th.start()
    backs: list[float] = []
    try:
        for at in (float(x) for x in a.kill_at.split(",")):
            time.sleep(max(0.0, chaos.t0 + at - time.monotonic()))
            pid = chaos.stack_pid("kafka")
            if pid:
                import os
                import signal

                os.kill(pid, signal.SIGKILL)
            chaos.note("broker_kill9", pid=pid, down=a.down)
            time.sleep(a.down)
            chaos.stack_up()
            backs.append(time.monotonic() - chaos.t0)
            log(f"broker back at t={backs[-1]:.1f}")
        produce_rc = producer.wait(timeout=900)
        log(f"producer exited {produce_rc}")
        status = chaos32.wait_drained(run, chaos, a.drain_timeout)
        stop.set()
        th.join()
        result = chaos32.account(run, chaos, status, produce_rc)
    finally:
        stop.set()
        if producer.poll() is None:
            producer.kill()
        for w in chaos.workers:
            w.terminate()
    stalls = []
    for back in backs:
        before = [s for s in samples if s[0] <= back]
        base_c = before[-1][1] if before else 0.0
        base_n = before[-1][2] if before else 0.0
        moved_c = next((s[0] for s in samples if s[0] > back and s[1] > base_c), None)
        moved_n = next((s[0] for s in samples if s[0] > back and s[2] > base_n), None)
        stalls.append(
            {
                "back_at": round(back, 1),
                "commit_stall_s": None if moved_c is None else round(moved_c - back, 1),
                "learn_stall_s": None if moved_n is None else round(moved_n - back, 1),
            }
        )
    summary: dict[str, Any] = {
        "prefix": run.prefix,
        "stalls": stalls,
        "events": result.get("features"),
        "pred_dup": result.get("pred_duplicates"),
        "unpredicted": result.get("unpredicted"),
        "labels_learned": result.get("labels_learned"),
        "train_dup": result.get("training_duplicates"),
        "not_joined": result.get("not_joined"),
        "deadletters": result.get("deadletters"),
        "died_alone": result.get("died_alone"),
    }
    (out / "result.json").write_text(json.dumps(result, indent=1, default=str))
    (out / "samples.json").write_text(json.dumps(samples))
    print("BROKER35 " + json.dumps(summary, default=str), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
