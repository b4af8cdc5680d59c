"""Session 44 (helper adv44): well-formed but hostile *values* on the learning and serving path, from outside.

Two parts:

``live``: a running deployment on the caller's stack (``DRIFTLINE_KAFKA_BOOTSTRAP``, ``DRIFTLINE_REDIS_URL`` set; one
``driftline worker --role all`` started here with its own topic prefix and metrics port). Events ``a + b + ... > k``
with ten numeric features and string classes ``yes``/``no``; one scenario's hostile values in events
``[lo, hi)``; labels published 20 events late, as JSON, with the contract's keys. Reports: worker alive, served
versions, served accuracy on the clean tail, the largest Prediction, guard decisions, dead letters.

``replay``: the same scenarios through ``driftline replay`` (in-process, the learning path only).

    DRIFTLINE_KAFKA_BOOTSTRAP=... DRIFTLINE_REDIS_URL=... PYTHONPATH=TREE python docs/experiments/adv44.py live \\
        --scenario classes --learner hoeffding_tree
    PYTHONPATH=TREE python docs/experiments/adv44.py replay --scenario types --learner hoeffding_tree
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import random
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

N = 3000
DELAY = 20
LO, HI = 600, 1600
FEATURES = 10
SCENARIOS = ("clean", "classes", "types", "bools", "ts", "idlabels", "cardinality")


def events(scenario: str, seed: int = 1) -> list[dict[str, Any]]:
    """The stream: ``{id, ts, features, label}``; ``label`` None for an event whose label is never sent."""
    rng = random.Random(seed)
    out = []
    t0 = 1_760_000_000_000
    for i in range(N):
        x: dict[str, Any] = {f"f{j}": rng.random() for j in range(FEATURES)}
        label: Any = "yes" if x["f0"] + x["f1"] > 1 else "no"
        ts = t0 + i * 1000
        hostile = LO <= i < HI
        if hostile and scenario == "classes":
            label = f"c{i}"  # one new class per label: 1,000 distinct classes
        elif hostile and scenario == "types":
            x["f0"] = [x["f0"], str(x["f0"]), i % 8 < 4, None][i % 4]
        elif hostile and scenario == "bools":
            x["f0"] = x["f0"] if i % 4 == 0 else bool(i % 2)
        elif hostile and scenario == "cardinality":
            # A string feature whose every value is new (not drawn from rng: the rest stays the clean stream).
            x["f2"] = f"token-{i * 2654435761 % 2**32:08x}"
        elif hostile and scenario == "ts":
            ts = [-(2**40), 0, 32_503_680_000_000, ts][i % 4]  # negative, epoch, year 3000
        out.append({"id": f"e{i}", "ts": ts, "features": x, "label": label})
    return out


# ---------------------------------------------------------------- replay


def run_replay(scenario: str, learner: str) -> dict[str, Any]:
    from streams.cli import main

    work = Path(tempfile.mkdtemp(prefix="adv44-"))
    data = work / "in.jsonl"
    with data.open("w") as f:
        for e in events(scenario):
            f.write(json.dumps({"id": e["id"], "ts": e["ts"], **e["features"], "y": e["label"]}) + "\n")
    out = work / "out.jsonl"
    argv = ["replay", "--file", str(data), "--label-col", "y", "--delay", str(DELAY), "--learner", learner,
            "--task", "classification", "--no-plain", "--out", str(out), "--json"]  # fmt: skip
    t = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()) as buf:
        rc = main(argv)
    seconds = time.perf_counter() - t
    summary = json.loads(buf.getvalue())
    clean = events("clean")
    served = [json.loads(line) for line in out.read_text().splitlines()]
    tail = served[HI + 400 :]
    acc = sum(p["prediction"] == clean[p["index"]]["label"] for p in tail) / len(tail)
    return {
        "scenario": scenario,
        "learner": learner,
        "rc": rc,
        "seconds": round(seconds, 1),
        "tail_accuracy": round(acc, 3),
        "versions": [served[i]["version"] for i in (LO - 1, HI - 1, HI + 400, N - 1)],
        "rejections": summary["rejections"],
        "rollbacks": summary["rollbacks"],
    }


# ---------------------------------------------------------------- live


def _env() -> dict[str, str]:
    for var in ("DRIFTLINE_KAFKA_BOOTSTRAP", "DRIFTLINE_REDIS_URL"):
        if var not in os.environ:
            sys.exit(f"{var} is not set: this script never runs against the default stack")
    return dict(os.environ)


def _metrics(port: int) -> list[str]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        return [line for line in r.read().decode().splitlines() if line.startswith("driftline_")]


def run_live(
    scenario: str, learner: str, metrics_port: int, settle: float, keep: bool = False
) -> dict[str, Any]:
    from confluent_kafka import Consumer, Producer

    env = _env()
    prefix = f"adv44{uuid.uuid4().hex[:6]}."
    work = Path(tempfile.mkdtemp(prefix="adv44-live-"))
    (work / "config.yaml").write_text(f"model:\n  learner:\n    name: {learner}\n")
    env.update(DRIFTLINE_TOPIC_PREFIX=prefix, DRIFTLINE_CONFIG=str(work / "config.yaml"),
               DRIFTLINE_METRICS_PORT=str(metrics_port))  # fmt: skip
    env.setdefault("DRIFTLINE_SIGNING_KEY", "adv44-" + "k" * 40)
    py = [sys.executable, "-m", "driftline"]
    subprocess.run([*py, "topics", "create"], env=env, check=True, capture_output=True)
    log = (work / "worker.log").open("w")
    worker = subprocess.Popen([*py, "worker", "--role", "all"], env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        time.sleep(12)
        bootstrap = env["DRIFTLINE_KAFKA_BOOTSTRAP"]
        prod = Producer({"bootstrap.servers": bootstrap})
        stream = events(scenario)
        for i, e in enumerate(stream):
            value = {"id": e["id"], "ts": e["ts"], "features": e["features"]}
            prod.produce(prefix + "features", json.dumps(value).encode(), key=e["id"].encode())
            j = i - DELAY
            if j >= 0 and stream[j]["label"] is not None:
                lab = {"id": stream[j]["id"], "ts": stream[j]["ts"] + 1, "label": stream[j]["label"]}
                prod.produce(prefix + "labels", json.dumps(lab).encode(), key=stream[j]["id"].encode())
            if scenario == "idlabels" and LO <= i < HI:  # labels for ids never sent (nor predicted)
                ghost = {"id": f"ghost{i}", "ts": e["ts"], "label": "yes"}
                prod.produce(prefix + "labels", json.dumps(ghost).encode(), key=f"ghost{i}".encode())
            if i % 100 == 99:
                prod.flush()
                time.sleep(0.5)
        for e in stream[-DELAY:]:
            lab = {"id": e["id"], "ts": e["ts"] + 1, "label": e["label"]}
            prod.produce(prefix + "labels", json.dumps(lab).encode(), key=e["id"].encode())
        prod.flush()
        # Until every label is learned (or refused), or ``settle`` seconds without progress: the trainer's pace.
        timeline: list[tuple[int, float]] = []
        last, since, start = -1.0, time.time(), time.time()
        while worker.poll() is None and time.time() - since < settle:
            time.sleep(10)
            done = sum(float(m.rsplit(" ", 1)[1]) for m in _metrics(metrics_port)
                       if m.startswith(("driftline_n_learned{", "driftline_deadletters_total{")))  # fmt: skip
            timeline.append((round(time.time() - start), done))
            if done != last:
                last, since = done, time.time()
            if done >= N:
                break
        alive = worker.poll() is None
        metrics = _metrics(metrics_port) if alive else []
        cons = Consumer({"bootstrap.servers": bootstrap, "group.id": f"adv44-{uuid.uuid4().hex}",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})  # fmt: skip
        cons.subscribe([prefix + "predictions"])
        from schemas.codec import default_codec

        codec = default_codec()

        preds: dict[str, dict[str, Any]] = {}
        biggest = 0
        idle = time.time()
        while time.time() - idle < 10:
            m = cons.poll(1.0)
            if m is None or m.error():
                continue
            idle = time.time()
            biggest = max(biggest, len(m.value()))
            rec = codec.decode("Prediction", m.value())
            preds[rec["id"]] = rec
        cons.close()
    finally:
        if keep:  # left running for a look (models show, status); the caller stops it by its pid
            print(f"worker pid {worker.pid}, prefix {prefix}", file=sys.stderr)
        else:
            worker.terminate()
            try:
                worker.wait(30)
            except subprocess.TimeoutExpired:
                worker.kill()
    clean = events("clean")
    idx = {e["id"]: k for k, e in enumerate(clean)}
    tail = [p for i, p in preds.items() if idx[i] >= HI + 400]
    acc = sum(p["prediction"] == clean[idx[p["id"]]]["label"] for p in tail) / max(1, len(tail))
    versions = Counter(p["version"] for p in tail)
    wanted = ("guard_decisions_total", "deadletters_total", "served_model_version", "n_learned",
              "input_warnings_total", "releases_withheld_total", "joins_total")  # fmt: skip
    picked = [m for m in metrics if any(w in m for w in wanted) and not m.endswith(" 0.0")]
    tracebacks = (work / "worker.log").read_text().count("Traceback")
    return {
        "scenario": scenario,
        "learner": learner,
        "alive": alive,
        "predictions": len(preds),
        "tail": len(tail),
        "tail_accuracy": round(acc, 3),
        "tail_versions": [*sorted(versions)[:3], "...", *sorted(versions)[-3:]],
        "largest_prediction_bytes": biggest,
        "tracebacks": tracebacks,
        "learned_or_deadlettered_by_second": timeline,
        "metrics": picked,
        "log": str(work / "worker.log"),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("part", choices=("live", "replay"))
    ap.add_argument("--scenario", choices=SCENARIOS, default="clean")
    ap.add_argument("--learner", default="logistic_regression")
    ap.add_argument("--metrics-port", type=int, default=15400)
    ap.add_argument("--settle", type=float, default=60.0)
    ap.add_argument("--events", type=int, default=N, help="events in the stream (default 3000)")
    ap.add_argument("--keep", action="store_true", help="leave the worker running (its pid is printed)")
    ap.add_argument("--features", type=int, default=FEATURES, help="numeric features per event (default 10)")
    args = ap.parse_args()
    globals()["FEATURES"] = args.features
    globals()["N"] = args.events
    if args.part == "replay":
        print(json.dumps(run_replay(args.scenario, args.learner)))
    else:
        print(
            json.dumps(
                run_live(args.scenario, args.learner, args.metrics_port, args.settle, args.keep), indent=1
            )
        )


if __name__ == "__main__":
    main()
