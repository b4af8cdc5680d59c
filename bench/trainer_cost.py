"""The train worker's cost outside the model: one ``train`` worker per source tree over the same pre-filled
TrainingExamples, alternated, with its CPU per label and (``--split`` or ``--profile``) where that CPU goes.

``python -m bench.trainer_cost [TREE ...] [--kinds logistic_regression,hoeffding_tree] [--events N] [--rounds R]
[--profile DIR] [--split DIR]``: for each kind and round, each tree (default: this one) gets topics of its own,
filled with ``N`` TrainingExamples carrying the served answers exactly as ``driftline bench`` fills them
(:func:`bench.data.served_answers`), then one ``driftline worker --role train`` started from that tree; it is
timed as the bench times it (:func:`bench.pipeline.learn_throughput`: labels/s and CPU per label from the
trainer's own status). Each tree keeps its best round. Bare River ``learn_one`` runs on the same rows in this
process before each round; ``learn_vs_river_learn_cpu`` is its best CPU per row over the worker's CPU per label
(``learn_vs_river_learn``: the worker's labels/s over bare River's best rate, as ``driftline bench`` divides).
``--split DIR`` (no py-spy needed) times the trainer thread's parts inside the worker (:mod:`bench.trainer_split`:
decode, learn_batch, release publishing, seal, status, GC, ... in CPU us per label). ``--profile`` attaches
``py-spy record --native`` to the worker while it learns and reports the shares of the Python threads' samples by
part. Either way the CPU of every thread by name is reported (librdkafka's threads are native: ``rdk:*``; every
Python thread is ``python``). The broker is the settings' (``DRIFTLINE_KAFKA_BOOTSTRAP``, ``DRIFTLINE_REDIS_URL``).
Used for BENCHMARKS.md (issue 16, the train worker per batch).
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.data import make_rows, produce_all, raw_producer, served_answers, training_value
from bench.env import BenchEnv, cpu_seconds, progress
from bench.pipeline import learn_throughput
from bench.trainer_split import install_site, worker_split
from driftline.settings import load_settings
from schemas.codec import default_codec
from streams.processes import WorkerProcess

SHORT = {"logistic_regression": "lr", "hoeffding_tree": "ht"}

# The parts a sample is charged to: the first of these frames found from the leaf up names it (innermost wins,
# so the status's JSON inside _publish_status is "status", a pickle inside _transaction's seal "checkpoint").
PARTS = (
    ("gc", ("gc_collect",)),  # the cyclic collector, wherever an allocation triggered it
    ("learn_batch", ("ModelLifecycle.learn_batch (",)),
    ("release_publish", ("Trainer.handle (",)),
    ("decode", ("Codec.decode_many (",)),
    ("checkpoint", ("seal (streams/train.py", "Trainer.state (streams/train.py")),
    ("input_check", ("Trainer._check_input (",)),
    ("per_label_bookkeeping", ("Trainer.learn_many (", "Trainer.process (")),
    ("status", ("TrainerGroup._publish_status (", "Trainer.publish_status (")),
    ("replies_audit", ("_send_replies (", "send_replies (", "commit_audit (", "publish_fairness (")),
    ("commit", ("EventProducer.commit (", "bounded (", "produce_bytes (")),
    (
        "consume",
        ("GatheringBatches._gather (", "GatheringBatches._fetch ("),
    ),  # _fetch: also inside a transaction
    ("raw_records", ("TrainerGroup._transaction (",)),
    ("trainer_loop", ("TrainerGroup.run (",)),
)


@dataclass
class TreeWorker(WorkerProcess):
    """A worker started from a given source tree (``python -m`` puts the working directory first on the path)."""

    cwd: str = "."
    path_first: str = ""  # a directory ahead of the tree on the path (``--split``'s sitecustomize)

    def start(self) -> TreeWorker:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("ab")
        cmd = [sys.executable, "-m", "streams.cli", "worker", "--role", self.role]
        cmd += ["--metrics-port", str(self.metrics_port)]
        path = f"{self.path_first}{os.pathsep}{self.cwd}" if self.path_first else self.cwd
        env = {**self.child_env(), "PYTHONPATH": path}
        self.proc = subprocess.Popen(
            cmd, env=env, cwd=self.cwd, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True
        )
        return self


def thread_cpu(pid: int) -> dict[str, float]:
    """CPU seconds of each thread of ``pid`` so far, summed by thread name."""
    out: dict[str, float] = collections.defaultdict(float)
    tick = os.sysconf("SC_CLK_TCK")
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            name = (task / "comm").read_text().strip()
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        out[name.rstrip("0123456789")] += (int(fields[11]) + int(fields[12])) / tick
    return dict(out)


def shares(raw_file: Path) -> dict[str, float]:
    """Shares of the trainer thread's py-spy samples (``--format raw``, collapsed stacks) by ``PARTS``."""
    counts: dict[str, int] = collections.Counter()
    total = 0
    for line in raw_file.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if not n.isdigit():
            continue
        frames = stack.split(";")
        if not any("TrainerGroup.run (" in f for f in frames):
            continue  # another thread (the event loop, the metrics server): mostly waiting
        total += int(n)
        part = "other"
        for frame in reversed(frames):
            hit = next((p for p, marks in PARTS if any(m in frame for m in marks)), None)
            if hit is not None:
                part = hit
                break
        counts[part] += int(n)
    return {k: round(v / max(1, total), 4) for k, v in sorted(counts.items(), key=lambda kv: -kv[1])}


def measure(
    env: BenchEnv,
    tree: str,
    kind: str,
    name: str,
    values: list[bytes],
    profile: Path | None,
    split: Path | None = None,
) -> dict[str, Any]:
    settings = env.settings(name, kind)
    env.ensure_topics(settings)
    produce_all(raw_producer(settings), settings.topic("training"), ((name.encode(), v) for v in values))
    worker_env = env.worker_env(name, kind)  # as the bench's own workers: none of the operator's settings
    path_first = ""
    if split is not None:
        path_first = str(install_site(split / "site"))
        worker_env["DRIFTLINE_BENCH_SPLIT"] = str(split / name)
    log_path = env.workdir / "logs" / f"{name}.log"
    worker = TreeWorker("train", worker_env, log_path, cwd=tree, path_first=path_first).start()
    env.workers.append(worker)
    spy = None
    try:
        if not worker.wait_metrics(90):
            raise RuntimeError(f"worker {name} did not start:\n{worker.log_tail()}")
        if profile is not None:
            profile.mkdir(parents=True, exist_ok=True)
            spy_bin = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
            cmd = [spy_bin, "record", "--pid", str(worker.pid), "--native", "-r", "200", "--format", "raw"]
            cmd += ["-o", str(profile / f"{name}.txt")]
            spy = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        threads0 = thread_cpu(worker.pid)
        cpu0 = cpu_seconds(worker.pid)
        out = learn_throughput(settings, len(values), worker, timeout=max(300.0, len(values) / 100))
        threads1 = thread_cpu(worker.pid)
        out["whole_run_cpu_us"] = (cpu_seconds(worker.pid) - cpu0) / len(values) * 1e6
        out["thread_cpu_us"] = {
            k: round((v - threads0.get(k, 0.0)) / len(values) * 1e6, 1)
            for k, v in threads1.items()
            if v - threads0.get(k, 0.0) > 0
        }
        out["metrics"] = _batch_metrics(worker)
    finally:
        if spy is not None:
            spy.send_signal(signal.SIGINT)
            spy.wait(60)
        env.stop_worker(worker)
    if profile is not None and (profile / f"{name}.txt").exists():
        out["shares"] = shares(profile / f"{name}.txt")
    if split is not None:
        out["split"] = worker_split(str(split / name))
    return out


def _batch_metrics(worker: WorkerProcess) -> dict[str, float]:
    """Transactions committed, the mean records per transaction and the releases by reason, from the worker's
    own metrics."""
    text = worker.metrics_text(2.0)
    got: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith('driftline_batch_size_count{stage="train"'):
            got["batches"] = float(line.rsplit(" ", 1)[1])
        elif line.startswith('driftline_batch_size_sum{stage="train"'):
            got["records"] = float(line.rsplit(" ", 1)[1])
        elif line.startswith("driftline_trainer_transactions_total") and 'outcome="committed"' in line:
            got["committed"] = float(line.rsplit(" ", 1)[1])
        elif (
            line.startswith("driftline_releases_total{")
            and 'reason="' in line
            and 'stage="score"' not in line
        ):
            # Releases by reason: a rollback takes n_learned back (the run's labels_learned counts every label).
            reason = line.split('reason="', 1)[1].split('"', 1)[0]
            got[f"releases_{reason}"] = float(line.rsplit(" ", 1)[1])
        elif line.startswith("driftline_guard_decisions_total{") and 'outcome="promote"' not in line:
            # Holds and vetoes (the guard's latency check times predictions: a loaded machine can veto a release).
            outcome = line.split('outcome="', 1)[1].split('"', 1)[0]
            reason = line.split('reason="', 1)[1].split('"', 1)[0]
            got[f"decisions_{outcome}_{reason}"] = float(line.rsplit(" ", 1)[1])
    if got.get("batches"):
        got["mean_batch"] = got.get("records", 0.0) / got["batches"]
    return got


def bare_learn(kind: str, rows: list[Any]) -> tuple[float, float]:
    """Bare River ``learn_one`` on a fresh raw estimator over ``rows``, in this process: (CPU us, wall us) per row."""
    from driftline.config import LearnerSpec
    from learners.specs import build_learner

    model = build_learner(LearnerSpec(kind)).model
    c0, w0 = time.process_time(), time.perf_counter()
    for _, x, y in rows:
        model.learn_one(x, y)
    return (time.process_time() - c0) / len(rows) * 1e6, (time.perf_counter() - w0) / len(rows) * 1e6


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.trainer_cost", description=__doc__)
    parser.add_argument("trees", nargs="*", default=["."], help="source trees to compare (default: this one)")
    parser.add_argument("--kinds", default="logistic_regression,hoeffding_tree")
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--profile", type=Path, default=None, help="py-spy raw stacks go here")
    parser.add_argument(
        "--split",
        type=Path,
        default=None,
        help="per-part CPU of the trainer thread (bench.trainer_split) goes here",
    )
    args = parser.parse_args(argv)
    trees = [str(Path(t).resolve()) for t in args.trees]
    env = BenchEnv(load_settings())
    codec = default_codec()
    rows = make_rows(args.events, seed=1)
    results: dict[str, Any] = {"events": args.events, "trees": trees, "runs": []}
    try:
        for kind in args.kinds.split(","):
            short = SHORT.get(kind, kind)
            answers = served_answers(env.settings(f"tc-{short}", kind), rows)
            now = int(time.time() * 1000)
            for r in range(args.rounds):
                # Between the workers' runs, so the yardstick shares their minutes (best of the rounds is kept).
                cpu_us, wall_us = bare_learn(kind, rows)
                results.setdefault("bare", {}).setdefault(kind, []).append(
                    {"cpu_us": cpu_us, "wall_us": wall_us}
                )
                # ABBA: the trees swap places every round, so neither always runs first after the bare loop.
                order = list(enumerate(trees))
                for t, tree in order if r % 2 == 0 else order[::-1]:
                    name = f"tc{r}t{t}-{short}"
                    topic = env.settings(name, kind).topic("training")
                    docs = [training_value(row, name, now, a) for row, a in zip(rows, answers, strict=True)]
                    values = codec.encode_many("TrainingExample", docs, topic=topic)
                    run = measure(env, tree, kind, name, values, args.profile, args.split)
                    run.update(kind=kind, tree=tree, round=r, load=os.getloadavg()[0])
                    results["runs"].append(run)
                    progress(
                        f"{kind} round {r} tree {t}: {run['learn_eps']:.0f}/s, {run['learn_cpu_us']:.1f} us CPU"
                        f"/label (steady {run.get('learn_steady_eps', 0):.0f}/s, "
                        f"{run.get('learn_steady_cpu_us', 0):.1f} us), last transaction "
                        f"{run.get('learn_tail_s', 0) * 1000:.0f} ms, n_learned {run['n_learned']}, "
                        f"load {run['load']:.2f} (others {run.get('learn_other_cores', 0):.2f} cores), "
                        f"batch {run['metrics'].get('mean_batch', 0):.0f}, shares {run.get('shares')}, "
                        f"threads {run['thread_cpu_us']}, split {run.get('split', {}).get('us_per_label')}, "
                        f"wall {run.get('split', {}).get('wall_us_per_label')}"
                    )
        best: dict[str, dict[str, Any]] = {}
        for run in results["runs"]:
            key = f"{SHORT.get(run['kind'], run['kind'])}:{run['tree']}"
            if key not in best or run["learn_cpu_us"] < best[key]["learn_cpu_us"]:
                best[key] = {k: run[k] for k in ("learn_eps", "learn_cpu_us", "whole_run_cpu_us", "metrics")}
                best[key]["learn_steady_eps"] = run.get("learn_steady_eps")
                bare = results["bare"][run["kind"]]
                bare_cpu = min(b["cpu_us"] for b in bare)
                bare_eps = 1e6 / min(b["wall_us"] for b in bare)
                # Per trainer against bare River learn_one: CPU per label (the steadier figure on a shared
                # machine), and labels/s over bare River's best wall rate (what `driftline bench` reports).
                best[key]["river_learn_cpu_us"] = bare_cpu
                best[key]["learn_vs_river_learn_cpu"] = bare_cpu / run["learn_cpu_us"]
                best[key]["learn_vs_river_learn"] = run["learn_eps"] / bare_eps
                # From the first report that counts labels (bench.pipeline.learn_throughput): no start-up in it.
                best[key]["learn_steady_vs_river_learn"] = run.get("learn_steady_eps", 0.0) / bare_eps
        # Best of the rounds by labels/s too: the wall clock is what the trainer is short of.
        for key in best:
            runs = [r for r in results["runs"] if f"{SHORT.get(r['kind'], r['kind'])}:{r['tree']}" == key]
            bare_eps = 1e6 / min(b["wall_us"] for b in results["bare"][runs[0]["kind"]])
            best[key]["best_learn_eps"] = max(r["learn_eps"] for r in runs)
            best[key]["best_learn_steady_eps"] = max(r.get("learn_steady_eps", 0.0) for r in runs)
            best[key]["best_learn_vs_river_learn"] = best[key]["best_learn_eps"] / bare_eps
            best[key]["best_learn_steady_vs_river_learn"] = best[key]["best_learn_steady_eps"] / bare_eps
        for run in results["runs"]:
            bare_cpu = min(b["cpu_us"] for b in results["bare"][run["kind"]])
            run["learn_vs_river_learn_cpu"] = bare_cpu / run["learn_cpu_us"]
        results["best"] = best
    finally:
        env.close()
    print(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
