"""Session 40 (helper stall40): a learner plugin that raises on one particular record, run by `driftline worker`
from outside the package (the README's launcher), against a stack of one's own. What do the score and train stages
do with it: crash loop, stall, or dead letter?

Usage (a stack of your own, never the shared one):
    DRIFTLINE_KAFKA_BOOTSTRAP=127.0.0.1:K DRIFTLINE_REDIS_URL=redis://127.0.0.1:R/0 \
        python docs/experiments/plugin40.py [--roles all|split]

Prints one JSON line: predictions and dead letters seen, whether the workers are alive, retries, tracebacks.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

MODULE = '''
from river import linear_model, preprocessing


class Touchy:
    """Learns like LR, but raises on one feature value: 13.0 in learn_one, 42.0 in predict_one/predict_proba_one."""

    def __init__(self):
        self.model = preprocessing.StandardScaler() | linear_model.LogisticRegression()

    def learn_one(self, x, y):
        if x.get("x1") == 13.0:
            raise ValueError("plugin bug: cannot learn x1=13")
        self.model.learn_one(x, y)

    def predict_one(self, x):
        if x.get("x1") == 42.0:
            raise ValueError("plugin bug: cannot predict x1=42")
        return self.model.predict_one(x)

    def predict_proba_one(self, x):
        if x.get("x1") == 42.0:
            raise ValueError("plugin bug: cannot predict x1=42")
        return self.model.predict_proba_one(x)


def build(params, task, seed):
    return Touchy()
'''

LAUNCHER = """
import sys

import mine
from learners.pickle_allow import ALLOWED
from learners.specs import KINDS

KINDS["touchy"] = (mine.build, ("classification",))
ALLOWED[("mine", "Touchy")] = "plain attributes, no __reduce__ or __setstate__ of its own"

from streams.cli import main

sys.exit(main(sys.argv[1:]))
"""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--roles", choices=("all", "split"), default="all")
    ap.add_argument("--n", type=int, default=300)
    ap.add_argument("--wait", type=float, default=30.0)
    args = ap.parse_args()
    if "DRIFTLINE_KAFKA_BOOTSTRAP" not in os.environ:
        sys.exit("set DRIFTLINE_KAFKA_BOOTSTRAP and DRIFTLINE_REDIS_URL to a stack of your own")
    tmp = Path(tempfile.mkdtemp(prefix="plugin40-"))
    (tmp / "mine.py").write_text(MODULE)
    (tmp / "launch.py").write_text(LAUNCHER)
    (tmp / "config.yaml").write_text("model:\n  learner: {name: touchy}\n  release_every: 50\n")
    rows = ["id,x1,x2,label"]
    for i in range(args.n):
        x1 = 13.0 if i == 60 else 42.0 if i == args.n * 2 // 3 + 10 else float(i % 7)
        rows.append(f"e{i},{x1},{(i * 37) % 11},{int((i % 7) > 3)}")
    # Two halves: the second is scored by a released model (the first half's labels), so predict_one runs in the
    # scorer on x1=42 too, not only in the trainer's test-then-train.
    half = args.n * 2 // 3
    (tmp / "first.csv").write_text("\n".join(rows[: half + 1]) + "\n")
    (tmp / "second.csv").write_text("\n".join([rows[0], *rows[half + 1 :]]) + "\n")
    prefix = f"plug40-{uuid.uuid4().hex[:6]}."
    env = dict(os.environ, DRIFTLINE_TOPIC_PREFIX=prefix, DRIFTLINE_STATE_DIR=str(tmp / "state"))
    env.setdefault("DRIFTLINE_SIGNING_KEY", "plugin40-key-" + uuid.uuid4().hex)
    env["PYTHONPATH"] = os.pathsep.join([str(tmp), str(Path(__file__).resolve().parents[2])])
    cli = [sys.executable, str(tmp / "launch.py"), "--config", str(tmp / "config.yaml")]
    roles = ["all"] if args.roles == "all" else ["score", "join", "train"]
    workers = []
    for k, role in enumerate(roles):
        err = open(tmp / f"{role}.log", "w")  # noqa: SIM115
        port = 19300 + k + (os.getpid() % 500) * 4
        workers.append(
            (role, subprocess.Popen([*cli, "worker", "--role", role, "--metrics-port", str(port)], env=env,
                                    stdout=err, stderr=subprocess.STDOUT))
        )  # fmt: skip
    time.sleep(15)
    for part in ("first", "second"):
        for what in ("features", "labels"):
            r = subprocess.run([*cli, "produce", what, "--file", str(tmp / f"{part}.csv"), "--label-col", "label"],
                               env=env, capture_output=True, text=True, timeout=120)  # fmt: skip
            if r.returncode:
                print(r.stderr, file=sys.stderr)
        time.sleep(args.wait)

    def tail(topic: str) -> list[dict]:
        r = subprocess.run([*cli, "tail", topic, "--from-beginning", "--json"], env=env, capture_output=True,
                           text=True, timeout=120)  # fmt: skip
        return [json.loads(line)["value"] for line in r.stdout.splitlines() if line.startswith("{")]

    preds, dead = tail("predictions"), tail("deadletter")
    out = {
        "roles": args.roles,
        "prefix": prefix,
        "predictions": len({p.get("id") for p in preds}),
        "predicted_by_version": {
            str(v): sum(p.get("version") == v for p in preds) for v in {p.get("version") for p in preds}
        },
        "events": args.n,
        "deadletters": [
            {"stage": d.get("stage"), "source": d.get("source_topic"), "error": str(d.get("error"))[:120]}
            for d in dead
        ],
        "alive": {role: p.poll() is None for role, p in workers},
    }
    for _role, p in workers:
        p.terminate()
    for _role, p in workers:
        try:
            p.wait(30)
        except subprocess.TimeoutExpired:
            p.kill()
    logs = {role: (tmp / f"{role}.log").read_text() for role, _ in workers}
    out["retry_lines"] = {role: text.count("retrying in") for role, text in logs.items()}
    out["tracebacks"] = {role: text.count("Traceback") for role, text in logs.items()}
    out["logs"] = str(tmp)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
