"""Issues 19 (governance) and 20 (operators) checked from outside, as their acceptance checks would.

Drives driftline only through its public contract: the command line, the topics (JSON records written with plain
confluent-kafka, as any client would), and each worker's /metrics. The stream is generated here (not the demo's
data): two numeric features, one categorical, a group attribute `group` (the fairness segment) and a drift in
which group B's concept changes. Prints a pass/fail table (and writes it as JSON with --out).

Run against any stack (bootstrap and Redis from the environment; a fresh topic prefix per run, removed at the end):

    DRIFTLINE_KAFKA_BOOTSTRAP=127.0.0.1:17092 DRIFTLINE_REDIS_URL=redis://127.0.0.1:17379/0 \\
        python docs/experiments/outside36.py [--keep] [--out results.json]

It starts its own score, join and train workers (one process each, free metrics ports) and stops them at the end.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import hmac
import json
import math
import os
import random
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
PY = sys.executable
RESULTS: list[dict[str, str]] = []


def record(cid: str, promise: str, ok: bool | None, detail: str = "") -> bool:
    """Adds one row to the table: ok True = PASS, False = FAIL, None = INFO (seen, nothing to judge)."""
    status = "INFO" if ok is None else ("PASS" if ok else "FAIL")
    RESULTS.append({"id": cid, "promise": promise, "status": status, "detail": detail[:400]})
    print(f"{status:4}  {cid:5} {promise}  {detail[:200]}", flush=True)
    return bool(ok)


def check(cid: str, promise: str, fn: Callable[[], tuple[bool | None, str]]) -> bool:
    try:
        ok, detail = fn()
    except Exception as exc:  # a check that crashes is a failure of the promise, with what crashed
        ok, detail = False, f"{type(exc).__name__}: {exc}"
    return record(cid, promise, ok, detail)


class Env:
    def __init__(
        self, prefix: str, state_dir: Path, config: Path, key: str, extra: dict[str, str] | None = None
    ):
        self.vars = dict(os.environ)
        self.vars.update(
            {
                "DRIFTLINE_TOPIC_PREFIX": prefix,
                "DRIFTLINE_STATE_DIR": str(state_dir),
                "DRIFTLINE_CONFIG": str(config),
                "DRIFTLINE_SIGNING_KEY": key,
                "PYTHONPATH": str(ROOT),
            }
        )
        self.vars.pop("DRIFTLINE_OPERATOR_KEY", None)
        if extra:
            self.vars.update(extra)
        self.prefix = prefix
        self.key = key

    def run(
        self, *args: str, timeout: float = 120, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        e = dict(self.vars)
        if env:
            e.update(env)
        return subprocess.run(
            [PY, "-m", "driftline", *args], env=e, capture_output=True, text=True, timeout=timeout, cwd=ROOT
        )

    def json(self, *args: str, timeout: float = 120) -> Any:
        p = self.run(*args, timeout=timeout)
        if p.returncode != 0:
            raise RuntimeError(f"driftline {' '.join(args)} exit {p.returncode}: {p.stderr.strip()[-300:]}")
        return json.loads(p.stdout)

    def lines(self, *args: str, timeout: float = 120) -> list[Any]:
        p = self.run(*args, timeout=timeout)
        if p.returncode != 0:
            raise RuntimeError(f"driftline {' '.join(args)} exit {p.returncode}: {p.stderr.strip()[-300:]}")
        return [json.loads(line) for line in p.stdout.splitlines() if line.strip()]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def gen_stream(
    n: int, seed: int, drift_at: int, prefix: str, b_negative: bool = False
) -> list[dict[str, Any]]:
    """x1, x2 uniform, color categorical, group A/B; y = x1 + 0.3[color=red] > 0.65, except that from `drift_at`
    on group B's label follows x2 > 0.5 (one segment's concept changes); `b_negative`: B's label is x1 > 0.95
    instead (B turns mostly negative: a model that learns it widens the parity gap)."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        g = "A" if rng.random() < 0.5 else "B"
        x1, x2 = rng.random(), rng.random()
        color = rng.choice(["red", "green", "blue"])
        y = (
            int(x2 > 0.5)
            if (i >= drift_at and g == "B")
            else int(x1 + (0.3 if color == "red" else 0.0) > 0.65)
        )
        if b_negative and g == "B":
            y = int(x1 > 0.95)
        rows.append(
            {"id": f"{prefix}{i}", "x1": round(x1, 4), "x2": round(x2, 4), "color": color, "group": g, "y": y}
        )
    return rows


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def scrape(port: int) -> dict[str, dict[str, Any]]:
    """Prometheus text -> {family: {"type": t, "samples": [(name, labels, value)]}}."""
    from prometheus_client.parser import text_string_to_metric_families

    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    out: dict[str, dict[str, Any]] = {}
    for fam in text_string_to_metric_families(text):
        out[fam.name] = {
            "type": fam.type,
            "samples": [(s.name, dict(s.labels), s.value) for s in fam.samples],
        }
    return out


def metric(port: int, name: str, **labels: str) -> float:
    """Sum of the samples of `name` (exact sample name) whose labels include `labels`."""
    fam = name[: -len("_total")] if name.endswith("_total") else name
    total = 0.0
    for s_name, s_labels, value in scrape(port).get(fam, {"samples": []})["samples"]:
        if s_name == name and all(s_labels.get(k) == v for k, v in labels.items()):
            total += value
    return total


def wait_for(pred: Callable[[], Any], timeout: float, every: float = 1.0) -> Any:
    end = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < end:
        with contextlib.suppress(Exception):
            last = pred()
            if last:
                return last
        time.sleep(every)
    return last


def producer(bootstrap: str) -> Any:
    from confluent_kafka import Producer

    # murmur2: the partitioner the README names for control commands (Java clients' default)
    return Producer({"bootstrap.servers": bootstrap, "partitioner": "murmur2_random", "acks": "all"})


def sign(key: bytes, rec: dict[str, Any]) -> dict[str, Any]:
    """A control command signed as the README's Control section says, without driftline's helpers."""
    rec = dict(rec)
    rec["key_id"] = "k-" + hashlib.sha256(b"driftline-operator-key:" + key).hexdigest()[:12]
    canonical = json.dumps(rec, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    rec["signature"] = hmac.new(key, canonical, hashlib.sha256).hexdigest()
    return rec


def readme_metrics() -> dict[str, set[str]]:
    """The README's metrics table: family -> label names. A row naming two families with labels `a`, `b` / `c`
    reads as: the first has a and b, the second a and c (the shared labels written once)."""
    text = (ROOT / "README.md").read_text()
    section = text.split("## Metrics", 1)[1].split("\n## ", 1)[0]
    out: dict[str, set[str]] = {}
    for line in section.splitlines():
        if not line.startswith("| `driftline_"):
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        names = re.findall(r"`(driftline_[a-z_]+)`", cells[0])
        # label names in backticks, not those inside parentheses (label values and notes)
        groups = [re.findall(r"`([a-z_]+)`", re.sub(r"\([^)]*\)", "", part)) for part in cells[1].split("/")]
        if cells[1] == "-":
            groups = [[]]
        if len(groups) == len(names) > 1:
            shared = groups[0][:-1]
            for n, g in zip(names, [groups[0], *[shared + g for g in groups[1:]]], strict=True):
                out[n] = set(g)
        else:
            for n in names:
                out[n] = set(groups[0])
    return out


# ----------------------------------------------------------------------------------------------------------------
# the run


class Stack:
    def __init__(self, env: Env, workdir: Path):
        self.env = env
        self.workdir = workdir
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.ports: dict[str, int] = {}

    def start(self, role: str, extra_env: dict[str, str] | None = None) -> None:
        port = free_port()
        e = dict(self.env.vars)
        if extra_env:
            e.update(extra_env)
        log = open(self.workdir / f"worker-{role}.log", "wb")  # noqa: SIM115 - closed with the process
        self.procs[role] = subprocess.Popen(
            [PY, "-m", "driftline", "worker", "--role", role, "--metrics-port", str(port)],
            env=e,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            start_new_session=True,
        )
        self.ports[role] = port

    def stop(self) -> None:
        for p in self.procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs.values():
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def trainer_state(env: Env) -> dict[str, Any]:
    show = env.json("models", "show", "--json")
    return show


def labels_learned(env: Env) -> int:
    s = trainer_state(env)
    return int(s.get("labels_learned", s.get("trainer", {}).get("labels_learned", 0)))


def topic_ids(env: Env, topic: str) -> list[str]:
    return [r["value"].get("id") for r in env.lines("tail", topic, "--from-beginning", "--json", timeout=180)]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--keep", action="store_true", help="keep the prefix's topics and state (no cleanup)")
    ap.add_argument("--out", help="write the table as JSON here")
    ap.add_argument("--events", type=int, default=1500)
    args = ap.parse_args()
    bootstrap = os.environ.get("DRIFTLINE_KAFKA_BOOTSTRAP")
    if not bootstrap or not os.environ.get("DRIFTLINE_REDIS_URL"):
        print("set DRIFTLINE_KAFKA_BOOTSTRAP and DRIFTLINE_REDIS_URL to the stack to check", file=sys.stderr)
        return 2
    run_id = uuid.uuid4().hex[:8]
    prefix = f"o36-{run_id}."
    work = Path(tempfile.mkdtemp(prefix=f"outside36-{run_id}-"))
    state = work / "state"
    key = secrets.token_hex(32)
    cfg = work / "cfg.yaml"
    cfg.write_text(
        "model:\n  learner: {name: logistic_regression, params: {}}\n  segment_feature: group\n  explain: true\n"
        "  release_every: 25\nguard:\n  fairness_max_gap: 0.3\n  alpha: 0.02\n"
    )
    env = Env(prefix, state, cfg, key)
    print(f"prefix {prefix}  work dir {work}  bootstrap {bootstrap}", flush=True)
    stack = Stack(env, work)
    try:
        return scenario(env, stack, work, bootstrap, args)
    finally:
        stack.stop()
        if not args.keep:
            p = env.run("cleanup", "--prefix", prefix, "--json", timeout=180)
            print(f"cleanup --prefix {prefix}: exit {p.returncode}", flush=True)
            shutil.rmtree(work, ignore_errors=True)
        print_table()
        if args.out:
            Path(args.out).write_text(json.dumps(RESULTS, indent=1))


def print_table() -> None:
    print("\n| id | promise | result | detail |\n|---|---|---|---|")
    for r in RESULTS:
        detail = r["detail"].replace("|", "\\|").replace("\n", " ")
        print(f"| {r['id']} | {r['promise']} | {r['status']} | {detail} |")
    counts = {s: sum(r["status"] == s for r in RESULTS) for s in ("PASS", "FAIL", "INFO")}
    print(f"\n{counts['PASS']} pass, {counts['FAIL']} fail, {counts['INFO']} info")


def scenario(env: Env, stack: Stack, work: Path, bootstrap: str, args: argparse.Namespace) -> int:
    P = env.prefix

    # ---------------------------------------------------------------- A: help, config, precedence (no workers)
    def helps() -> tuple[bool, str]:
        cmds = [
            [], ["worker"], ["produce"], ["models"], ["models", "set"], ["models", "pause"], ["models", "resume"],
            ["models", "settings"], ["models", "promote"], ["models", "rollback"], ["models", "diff"],
            ["models", "show"], ["models", "list"], ["audit"], ["audit", "verify"], ["audit", "show"],
            ["explain"], ["config", "show"], ["config", "validate"], ["status"], ["cleanup"], ["tail"],
        ]  # fmt: skip
        bad = [" ".join(c) for c in cmds if env.run(*c, "--help", timeout=60).returncode != 0]
        return not bad, f"{len(cmds)} commands; failing: {bad}" if bad else f"{len(cmds)} commands exit 0"

    check("A1", "every command of issues 19/20 has --help (exit 0)", helps)

    def validate_bad() -> tuple[bool, str]:
        bad = work / "bad.yaml"
        bad.write_text("guard:\n  alpha: 0.05\n  fairnes_max_gap: 0.2\n")
        p = env.run("config", "validate", str(bad))
        pj = env.run("config", "validate", str(bad), "--json")
        j = json.loads(pj.stdout)
        ok = p.returncode == 2 and "fairnes_max_gap" in (p.stdout + p.stderr) and pj.returncode == 2
        ok = ok and j.get("valid") is False and "fairnes_max_gap" in str(j.get("field"))
        return (
            ok,
            f"exit {p.returncode}/{pj.returncode}: {(p.stdout + p.stderr).strip()[:160]} | json field={j.get('field')}",
        )

    check("A2", "config validate: unknown key exits 2 naming the field (--json too)", validate_bad)

    def validate_range() -> tuple[bool, str]:
        bad = work / "bad2.yaml"
        bad.write_text("guard:\n  fairness_max_gap: 1.5\n")
        p = env.run("config", "validate", str(bad))
        return p.returncode == 2 and "fairness_max_gap" in (p.stdout + p.stderr), (
            f"exit {p.returncode}: {(p.stdout + p.stderr).strip()[:200]}"
        )

    check("A3", "config validate: out-of-range guard.fairness_max_gap exits 2 naming it", validate_range)

    def precedence() -> tuple[bool, str]:
        # YAML says guard.alpha 0.02; env says 0.03 -> env wins; flag --bootstrap beats env bootstrap
        j_file = env.json("config", "show", "--json")
        e = env.run("config", "show", "--json", env={"DRIFTLINE__GUARD__ALPHA": "0.03"})
        j_env = json.loads(e.stdout)
        f = env.run("--bootstrap", "127.0.0.1:1", "config", "show", "--json")
        j_flag = json.loads(f.stdout)
        a_file, a_env = j_file["guard"]["alpha"], j_env["guard"]["alpha"]
        b_flag = j_flag["kafka"]["bootstrap"]
        ok = a_file == 0.02 and a_env == 0.03 and b_flag == "127.0.0.1:1"
        return ok, f"file alpha={a_file}, env over file={a_env}, flag over env bootstrap={b_flag}"

    check("A4", "precedence flag > env > YAML > default (config show --json)", precedence)

    def masked() -> tuple[bool, str]:
        p = env.run(
            "config", "show", "--json", env={"DRIFTLINE_REDIS_URL": "redis://:s3cretpass@127.0.0.1:1/0"}
        )
        out = p.stdout + p.stderr
        return env.key not in out and "s3cretpass" not in out and p.returncode == 0, (
            f"exit {p.returncode}; signing key shown: {env.key in out}; redis password shown: {'s3cretpass' in out}"
        )

    check("A5", "config show masks the signing key and the Redis password", masked)

    # ---------------------------------------------------------------- B: topics, workers, a stream through them
    p = env.run("topics", "create", "--json", timeout=180)
    check(
        "B1",
        "topics create --json parses, exit 0",
        lambda: (p.returncode == 0 and bool(json.loads(p.stdout)), f"exit {p.returncode}"),
    )
    stack.start("score")
    stack.start("join")
    stack.start("train", {"DRIFTLINE__GUARD__HOLD_MARGIN": "0.25"})
    v1 = wait_for(lambda: trainer_state(env).get("version"), 120, 2)
    if not v1:
        record(
            "B2",
            "workers start and publish v1",
            False,
            "no release in 120 s; see worker logs in " + str(work),
        )
        return 1
    rows = gen_stream(args.events, seed=int(time.time()) % 1000, drift_at=args.events // 2, prefix="s1-")
    f1 = write_jsonl(work / "s1.jsonl", rows)
    p = env.run("produce", "features", "--file", str(f1), "--label-col", "y", "--with-labels", "--label-delay", "20",
                "--rate", "300", "--json", timeout=300)  # fmt: skip
    summary = json.loads(p.stdout)
    check(
        "B2",
        "produce --json: every event and label sent",
        lambda: (
            summary.get("features") == args.events and summary.get("labels") == args.events,
            str(summary),
        ),
    )
    got = wait_for(lambda: labels_learned(env) >= args.events, 240, 3)
    n0 = labels_learned(env)
    check(
        "B3",
        f"all {args.events} labels learned (models show --json labels_learned)",
        lambda: (bool(got), f"labels_learned={n0}"),
    )
    pred_ids = topic_ids(env, "predictions")
    check(
        "B4",
        "one prediction per event (tail predictions --json)",
        lambda: (
            len(pred_ids) == args.events and len(set(pred_ids)) == args.events,
            f"{len(pred_ids)} predictions, {len(set(pred_ids))} ids",
        ),
    )

    # ---------------------------------------------------------------- C: live control
    def ctl_count() -> int:
        return len(env.lines("tail", "control", "--from-beginning", "--json", timeout=120))

    before = ctl_count()
    for cid, kv, name in (
        ("C1", "bogus.key=1", "bogus.key"),
        ("C2", "guard.alpha=abc", "guard.alpha"),
        ("C3", "guard.alpha=5", "guard.alpha"),
        ("C4", "kafka.partitions=8", "kafka.partitions"),
    ):
        q = env.run("models", "set", kv)
        check(
            cid,
            f"models set {kv}: exit 2 naming {name}",
            lambda q=q, name=name: (
                q.returncode == 2 and name in q.stderr,
                f"exit {q.returncode}: {q.stderr.strip()[:200]}",
            ),
        )
    after = ctl_count()
    check(
        "C5",
        "refused-before-sending commands put nothing on control",
        lambda: (after == before, f"control records {before} -> {after}"),
    )

    def set_ok() -> tuple[bool, str]:
        j = env.json("models", "set", "guard.alpha=0.01", "--json")
        s = env.json("models", "settings", "--json")["settings"]
        a = s["guard.alpha"]
        ok = j["answer"]["outcome"] == "ok" and a["value"] == 0.01 and "set" in a["source"]
        return ok, f"answer={j['answer'].get('message')}; settings guard.alpha={a}"

    check("C6", "models set guard.alpha=0.01: exit 0, trainer's answer, settings shows live set", set_ok)

    def sources() -> tuple[bool, str]:
        s = env.json("models", "settings", "--json")["settings"]
        fm, hm, ma = s["guard.fairness_max_gap"], s["guard.hold_margin"], s["guard.max_disagreement"]
        ok = fm["source"] == "file" and fm["value"] == 0.3 and "env" in hm["source"] and hm["value"] == 0.25
        ok = ok and ma["source"] == "default"
        return ok, f"fairness_max_gap={fm}, hold_margin={hm}, max_disagreement={ma}"

    check("C7", "models settings: sources file / environment / default", sources)

    def promote_refused() -> tuple[bool, str]:
        q = env.run("models", "promote", "999")
        return q.returncode == 1 and "999" in (
            q.stdout + q.stderr
        ), f"exit {q.returncode}: {(q.stdout + q.stderr).strip()[:200]}"

    check("C8", "models promote 999 (no such release): exit 1 with the reason", promote_refused)

    def promote_held_none() -> tuple[bool, str]:
        q = env.run("models", "promote", "held")
        return q.returncode == 1, f"exit {q.returncode}: {(q.stdout + q.stderr).strip()[:200]}"

    check("C9", "models promote held with nothing held: exit 1", promote_held_none)

    def no_wait() -> tuple[bool, str]:
        q = env.run("models", "set", "release_every=30", "--no-wait", "--json")
        j = json.loads(q.stdout)
        seen = wait_for(
            lambda: env.json("models", "settings", "--json")["settings"]["release_every"]["value"] == 30, 30
        )
        return q.returncode == 0 and bool(
            seen
        ), f"exit {q.returncode}, waited={j.get('waited')}, applied later={bool(seen)}"

    check("C10", "--no-wait: exit 0 at once, applied by the trainer", no_wait)

    # hand-written JSON commands on control, as a client without driftline would send
    prod = producer(bootstrap)
    ports = stack.ports
    dl_before = len(env.lines("tail", "deadletter", "--from-beginning", "--json"))

    def send(rec: dict[str, Any]) -> None:
        prod.produce(P + "control", key=b"default", value=json.dumps(rec).encode())
        prod.flush(10)

    now = int(time.time() * 1000)
    base = {"model": "default", "command": "set", "args": {"release_every": "40"}}
    send({**base, "ts": now, "id": "o36-unsigned"})
    send(sign(secrets.token_hex(32).encode(), {**base, "ts": now, "id": "o36-otherkey"}))
    send(sign(env.key.encode(), {**base, "ts": now - 3_600_000, "id": "o36-stale"}))
    good = sign(env.key.encode(), {**base, "ts": now, "id": "o36-good"})
    send(good)
    time.sleep(2)
    send(good)  # replay
    for reason in ("unsigned", "signature", "stale", "replay"):
        v = wait_for(
            lambda reason=reason: (
                metric(ports["train"], "driftline_control_refused_total", reason=reason) >= 1
            ),
            60,
        )
        n_refused = metric(ports["train"], "driftline_control_refused_total", reason=reason)
        check(
            f"C11{'uSsr'[['unsigned', 'signature', 'stale', 'replay'].index(reason)]}",
            f"a {reason} control command is refused and counted (control_refused_total)",
            lambda v=v, reason=reason, n=n_refused: (
                bool(v),
                f"control_refused_total{{reason={reason}}} = {n}",
            ),
        )
    applied = wait_for(
        lambda: env.json("models", "settings", "--json")["settings"]["release_every"]["value"] == 40, 30
    )
    check(
        "C12",
        "a command signed by hand as the README says is applied",
        lambda: (bool(applied), "release_every -> 40"),
    )
    dl = wait_for(
        lambda: len(env.lines("tail", "deadletter", "--from-beginning", "--json")) - dl_before >= 4, 60
    )
    dls = [r["value"] for r in env.lines("tail", "deadletter", "--from-beginning", "--json")]
    dls = [d for d in dls if d.get("source_topic") == P + "control"]
    check(
        "C13",
        "each refused command dead-lettered once, with the reason",
        lambda: (
            bool(dl) and len(dls) == 4,
            f"{len(dls)} new dead letters: {[d.get('error', '')[:60] for d in dls]}",
        ),
    )

    def status_dl() -> tuple[bool, str]:
        s = env.json("status", "--json", timeout=120)
        text = json.dumps(s)
        ok = "deadletter" in text and ("control" in text)
        keys = [k for k in s if "dead" in k]
        return ok, f"status keys with dead letters: {keys}: {json.dumps({k: s[k] for k in keys})[:250]}"

    check("C14", "status --json shows the dead letters of the last hour", status_dl)

    # ---------------------------------------------------------------- D: pause without loss
    m = ports["train"]
    held0 = metric(m, "driftline_paused_examples_total", outcome="held")
    q = env.run("models", "pause", "--json")
    check(
        "D1",
        "models pause: exit 0, says labels are kept; learning_paused=1",
        lambda: (
            q.returncode == 0 and metric(m, "driftline_learning_paused") == 1.0,
            f"exit {q.returncode}; {q.stdout.strip()[:200]} {q.stderr.strip()[:100]}",
        ),
    )
    n_before = labels_learned(env)
    n2 = 300
    f2 = write_jsonl(work / "s2.jsonl", gen_stream(n2, 11, 0, "s2-"))
    env.run(
        "produce",
        "features",
        "--file",
        str(f2),
        "--label-col",
        "y",
        "--with-labels",
        "--rate",
        "300",
        timeout=120,
    )
    held = wait_for(lambda: metric(m, "driftline_held_examples") >= n2, 120)
    n_paused = labels_learned(env)
    check(
        "D2",
        f"{n2} labels sent while paused are held (held_examples), none learned",
        lambda: (
            bool(held) and n_paused == n_before,
            f"held_examples={metric(m, 'driftline_held_examples')}, paused_examples_total{{held}} "
            f"+{metric(m, 'driftline_paused_examples_total', outcome='held') - held0}, "
            f"labels_learned {n_before}->{n_paused}",
        ),
    )
    st = env.json("status", "--json", timeout=120)
    check(
        "D3",
        "status --json shows the held labels",
        lambda: (n2 in _find_numbers(st, "held"), f"numbers under 'held' keys: {_find_numbers(st, 'held')}"),
    )
    learned0 = metric(m, "driftline_paused_examples_total", outcome="learned")
    q = env.run("models", "resume", "--json")
    done = wait_for(lambda: labels_learned(env) >= n_before + n2, 120)
    n_after = labels_learned(env)
    check(
        "D4",
        "resume learns every held label (labels_learned +N, learned counter +N)",
        lambda: (
            q.returncode == 0
            and bool(done)
            and n_after == n_before + n2
            and metric(m, "driftline_paused_examples_total", outcome="learned") - learned0 == n2
            and metric(m, "driftline_held_examples") == 0,
            f"exit {q.returncode}; labels_learned {n_before} -> {n_after} (expected +{n2}); learned counter "
            f"+{metric(m, 'driftline_paused_examples_total', outcome='learned') - learned0}",
        ),
    )

    disc0 = metric(m, "driftline_paused_examples_total", outcome="discarded")
    q = env.run("models", "pause", "--discard", "--json")
    n3 = 200
    f3 = write_jsonl(work / "s3.jsonl", gen_stream(n3, 12, 0, "s3-"))
    env.run(
        "produce",
        "features",
        "--file",
        str(f3),
        "--label-col",
        "y",
        "--with-labels",
        "--rate",
        "300",
        timeout=120,
    )
    disc = wait_for(
        lambda: metric(m, "driftline_paused_examples_total", outcome="discarded") - disc0 >= n3, 120
    )
    env.run("models", "resume")
    time.sleep(5)
    n_end = labels_learned(env)
    check(
        "D5",
        "pause --discard: labels dropped and counted, none learned after resume",
        lambda: (
            q.returncode == 0 and bool(disc) and n_end == n_after,
            f"discarded +{metric(m, 'driftline_paused_examples_total', outcome='discarded') - disc0}, labels_learned "
            f"{n_after} -> {n_end}",
        ),
    )
    pred_all = topic_ids(env, "predictions")
    train_ids = topic_ids(env, "training")
    exp = args.events + n2 + n3
    check(
        "D6",
        "records in = records out: every event predicted once, every label one training example",
        lambda: (
            len(pred_all) == exp == len(set(pred_all)) and len(train_ids) == exp == len(set(train_ids)),
            f"events {exp}; predictions {len(pred_all)} ({len(set(pred_all))} ids); "
            f"training {len(train_ids)} ({len(set(train_ids))} ids)",
        ),
    )

    # ---------------------------------------------------------------- E: explain a prediction
    preds = [r["value"] for r in env.lines("tail", "predictions", "-n", "50", "--json")]
    served = [r for r in preds if (r.get("version") or 0) > 1 and r.get("proba")]
    target = served[-1] if served else preds[-1]

    def explain_one() -> tuple[bool, str]:
        j = env.json("explain", target["id"], "--json")
        c = j.get("contributions") or {}
        proba = target.get("proba") or {}
        pred = target.get("prediction")
        p = proba.get(str(pred), proba.get(pred)) if proba else None  # type: ignore[call-overload]
        s = sum(c.values())
        logodds = math.log(p / (1 - p)) if p and 0 < p < 1 else None
        ok = j.get("method") == "linear_contribution" and j.get("id") == target["id"] and len(c) >= 4
        ok = ok and logodds is not None and abs(s - logodds) < 1e-3
        return (
            ok,
            f"id {target['id']} v{target.get('version')}: method={j.get('method')}, sum={s:.4f}, "
            f"log-odds={logodds}, keys={sorted(c)}",
        )

    check(
        "E1",
        "explain ID --json: linear contributions that add up to the log-odds of the prediction",
        explain_one,
    )
    q = env.run("explain", target["id"])
    check(
        "E2",
        "explain ID (text): exit 0, lists features",
        lambda: (q.returncode == 0 and "x1" in q.stdout, q.stdout.strip()[:200]),
    )
    q = env.run("explain", "no-such-id", "--timeout", "20")
    check(
        "E3",
        "explain of an unknown id: non-zero exit, says what to do",
        lambda: (
            q.returncode != 0 and "no-such-id" in q.stderr,
            f"exit {q.returncode}: {q.stderr.strip()[:200]}",
        ),
    )
    q = env.run("explain", "no-such-id", "--timeout", "20", "--json")
    check(
        "E4",
        "explain --json of an unknown id: stdout is JSON or empty (scripts)",
        lambda: (
            q.returncode != 0 and (not q.stdout.strip() or bool(json.loads(q.stdout))),
            f"exit {q.returncode}, stdout {q.stdout.strip()[:100]!r}",
        ),
    )

    # ---------------------------------------------------------------- F: explain a release
    rel = env.lines("models", "list", "--json")
    versions = sorted(int(r["version"]) for r in rel if r.get("verified", True))
    a, b = versions[-2], versions[-1]

    def diff() -> tuple[bool, str]:
        j = env.json("models", "diff", str(a), str(b), "--json")
        text = json.dumps(j)
        ok = all(k in text for k in ("data_range", "decision")) and ("x1" in text)
        return ok, f"diff {a} {b}: keys {sorted(j)}"

    check("F1", "models diff A B --json: feature changes, data range, guard evidence", diff)
    q = env.run("models", "diff", str(a), "99999")
    check(
        "F2",
        "models diff with an unknown version: non-zero, names it",
        lambda: (q.returncode != 0 and "99999" in q.stderr, f"exit {q.returncode}: {q.stderr.strip()[:200]}"),
    )

    audit = env.lines("audit", "show", "--json")
    releases = [e for e in audit if e.get("kind") == "release"]

    def release_entries() -> tuple[bool, str]:
        missing = [
            e["record"].get("version")
            for e in releases[1:]
            if e["record"].get("reason") in ("incremental", "challenger") and not e["record"].get("changes")
        ]
        no_range = [
            e["record"].get("version")
            for e in releases
            if e["record"].get("reason") != "initial" and not e["record"].get("data_range")
        ]
        return (
            not missing and not no_range,
            f"{len(releases)} release entries; without changes: {missing}; without data_range: {no_range}",
        )

    check("F3", "every audited release (but v1) records what changed and its data range", release_entries)

    # ---------------------------------------------------------------- G: fairness
    def fairness_metrics() -> tuple[bool, str]:
        fams = scrape(m)
        rates = fams.get("driftline_fairness_rate", {"samples": []})["samples"]
        gaps = {s[1]["gap"]: s[2] for s in fams.get("driftline_fairness_gap", {"samples": []})["samples"]}
        segs = {s[1]["segment"] for s in rates}
        r = {(s[1]["segment"], s[1]["rate"]): s[2] for s in rates}
        dp = abs(r.get(("A", "positive_rate"), 0) - r.get(("B", "positive_rate"), 0))
        eo = max(
            abs(r.get(("A", "tpr"), 0) - r.get(("B", "tpr"), 0)),
            abs(r.get(("A", "fpr"), 0) - r.get(("B", "fpr"), 0)),
        )
        ok = segs >= {"A", "B"} and {"demographic_parity", "equalized_odds", "accuracy"} <= set(gaps)
        ok = (
            ok
            and abs(gaps.get("demographic_parity", -1) - dp) < 1e-9
            and abs(gaps.get("equalized_odds", -1) - eo) < 1e-9
        )
        return ok, f"segments {sorted(segs)}; gaps {gaps}; recomputed dp={dp:.4f} eo={eo:.4f}"

    check(
        "G1", "fairness rates per segment and gaps on /metrics, gaps = max-min of the rates", fairness_metrics
    )
    rules = (ROOT / "deploy/prometheus/rules/driftline.yml").read_text()
    check(
        "G2",
        "alert rule DriftlineFairnessGapHigh on driftline_fairness_gap",
        lambda: (
            "DriftlineFairnessGapHigh" in rules and "driftline_fairness_gap" in rules,
            "deploy/prometheus/rules/driftline.yml",
        ),
    )
    decisions = [e for e in audit if e.get("kind") == "decision"]
    fair_refused = [
        e for e in decisions if isinstance((e["record"].get("checks") or {}).get("fairness"), str)
    ]
    record(
        "G3",
        "guard decisions carry a fairness check (refusals seen in this run)",
        (bool(decisions) and all("fairness" in (e["record"].get("checks") or {}) for e in decisions)) or None,
        f"{len(decisions)} decisions, {len(fair_refused)} refused on fairness",
    )

    def blind(e: dict[str, Any]) -> bool:
        """A promotion, past the cold start, whose fairness check passed without two measured segments."""
        r = e["record"]
        segs = (r.get("evidence") or {}).get("fairness.baseline_segments", 0)
        return r.get("outcome") == "promote" and int(r.get("index") or 0) >= 300 and segs < 2

    blind_all = [e["record"] for e in decisions if blind(e)]
    check(
        "G3b",
        "default cadence (release_every 25), bound 0.3 from the file: every promotion past 300 labels was measured",
        lambda: (
            not blind_all,
            f"{len(blind_all)} of {sum(e['record'].get('outcome') == 'promote' for e in decisions)} promotions passed "
            f"'fairness: true' with fewer than 2 segments of 30 paired examples (paired n "
            f"{sorted({int((r.get('evidence') or {}).get('n', 0)) for r in blind_all})})",
        ),
    )

    # ---------------------------------------------------------------- H: audit trail
    controls = [e for e in audit if e.get("kind") == "control"]
    ids = {e["record"].get("id") for e in controls}
    check(
        "H1",
        "audit show: each control command (applied or refused, hand-signed too) is an entry",
        lambda: (
            {"o36-good", "o36-unsigned", "o36-otherkey", "o36-stale"} <= ids,
            f"{len(controls)} control entries; ids {sorted(i for i in ids if i and i.startswith('o36'))}",
        ),
    )
    check(
        "H2",
        "audit show --json: seq, prev, hash, sig on every entry, seq 0..n-1",
        lambda: (
            all(all(k in e for k in ("seq", "prev", "hash", "sig", "kind", "model")) for e in audit)
            and [e["seq"] for e in audit] == list(range(len(audit))),
            f"{len(audit)} entries",
        ),
    )
    q = env.run("audit", "verify", "--json")
    check(
        "H3",
        "audit verify --json: the live chain verifies (file and topic), exit 0",
        lambda: (
            q.returncode == 0 and json.loads(q.stdout).get("ok") is True,
            f"exit {q.returncode}: {q.stdout[:200]}",
        ),
    )
    state = Path(env.vars["DRIFTLINE_STATE_DIR"])
    chain = state / "audit" / f"{P}default.jsonl"
    head = state / "audit" / f"{P}default.head.json"
    lines = chain.read_text().splitlines()
    for cid, kind, mutate in (
        ("H4a", "altered", lambda ls: [*ls[:5], _alter(ls[5]), *ls[6:]]),
        ("H4b", "removed", lambda ls: ls[:5] + ls[6:]),
        ("H4c", "reordered", lambda ls: [*ls[:5], ls[6], ls[5], *ls[7:]]),
        ("H4d", "duplicated", lambda ls: [*ls[:6], ls[5], *ls[6:]]),
        ("H4e", "truncated", lambda ls: ls[:-3]),
    ):  # fmt: skip
        copy = work / f"tampered-{kind}.jsonl"
        copy.write_text("\n".join(mutate(list(lines))) + "\n")
        q = env.run("audit", "verify", "--source", "file", "--file", str(copy), "--head", str(head), "--json")
        check(
            cid,
            f"audit verify catches a {kind} entry (exit 1, names the kind)",
            lambda q=q, kind=kind: (
                q.returncode == 1 and kind in _kinds(q.stdout),
                f"exit {q.returncode}: kinds {_kinds(q.stdout)}",
            ),
        )

    # ---------------------------------------------------------------- J: trouble is visible, honest numbers
    def series_of_served_only() -> tuple[bool, str]:
        fams = scrape(m)
        served = {s[1]["model"]: s[2] for s in fams["driftline_served_model_version"]["samples"]}
        versions = {s[1]["version"] for s in fams["driftline_model_metric"]["samples"]}
        return versions == {
            str(int(served["default"]))
        }, f"served {served}; model_metric versions {sorted(versions)}"

    check(
        "J1", "driftline_model_metric only for the served version (old series removed)", series_of_served_only
    )
    t0 = time.monotonic()
    prod.produce(P + "features", key=b"junk", value=b"this is plain text, not JSON")
    prod.flush(10)

    def dl_in_status() -> bool:
        s = env.json("status", "--json", timeout=60)
        return "features" in json.dumps(s.get("deadletters_last_hour", {}))

    seen = wait_for(dl_in_status, 90, 0.5)
    took = time.monotonic() - t0
    check(
        "J2",
        "status shows a dead letter on features within seconds",
        lambda: (bool(seen), f"after {took:.1f} s"),
    )
    fdl = [r["value"] for r in env.lines("tail", "deadletter", "--from-beginning", "--json")]
    fdl = [d for d in fdl if d.get("source_topic") == P + "features"]
    check(
        "J3",
        "a text record on features: the dead letter says it is neither JSON nor Avro",
        lambda: (
            len(fdl) == 1 and "JSON" in fdl[0].get("error", ""),
            f"{len(fdl)} dead letters: {[d.get('error') for d in fdl]}",
        ),
    )
    # a label for an id never predicted: parked, visible in status
    prod.produce(
        P + "labels",
        key=b"o36-never",
        value=json.dumps({"id": "o36-never", "ts": int(time.time() * 1000), "label": 1}).encode(),
    )
    prod.flush(10)
    parked = wait_for(
        lambda: env.json("status", "--json", timeout=60)["models"][0]["joins"]["parked"] >= 1, 60
    )
    check(
        "J4",
        "a label for an id never predicted is parked and shown by status",
        lambda: (
            bool(parked),
            f"status joins: {env.json('status', '--json', timeout=60)['models'][0]['joins']}",
        ),
    )
    # a feature changing type, and a label class never seen
    warn0 = {k: metric(m, "driftline_input_warnings_total", kind=k) for k in ("feature_type", "new_class")}
    odd = gen_stream(40, 13, 0, "s4-")
    for r in odd[:20]:
        r["x1"] = "sunny"
    for r in odd[20:25]:
        r["y"] = 2
    f4 = write_jsonl(work / "s4.jsonl", odd)
    q = env.run(
        "produce",
        "features",
        "--file",
        str(f4),
        "--label-col",
        "y",
        "--with-labels",
        "--rate",
        "200",
        timeout=120,
    )
    got_w = wait_for(
        lambda: all(metric(m, "driftline_input_warnings_total", kind=k) > warn0[k] for k in warn0), 90
    )
    drift = [r["value"] for r in env.lines("tail", "drift", "--from-beginning", "--json")]
    schema = sorted({d.get("signal") for d in drift if d.get("detector") == "schema"})
    check(
        "J5",
        "a feature changing type and a new label class: counted warnings and schema drift events",
        lambda: (
            q.returncode == 0 and bool(got_w) and "feature_type:x1" in schema and "label:new_class" in schema,
            f"produce exit {q.returncode}; warnings +"
            f"{ {k: metric(m, 'driftline_input_warnings_total', kind=k) - warn0[k] for k in warn0} }; "
            f"schema signals {schema}",
        ),
    )

    def dl_once() -> tuple[bool, str]:
        topic_n = len(env.lines("tail", "deadletter", "--from-beginning", "--json"))
        per = {role: metric(port, "driftline_deadletters_total") for role, port in stack.ports.items()}
        ev = {
            role: metric(port, "driftline_events_total", outcome="deadletter")
            for role, port in stack.ports.items()
        }
        return sum(per.values()) == topic_n == sum(
            ev.values()
        ), f"deadletter topic {topic_n}; deadletters_total {per}; events_total{{deadletter}} {ev}"

    check(
        "J6", "every dead letter counted once (topic = deadletters_total = events_total{deadletter})", dl_once
    )

    def rollback() -> tuple[bool, str]:
        q = env.run("models", "rollback", "--json", timeout=60)
        rel = [r for r in env.lines("models", "list", "--json") if r.get("verified", True)]
        by_v = {int(r["version"]): r for r in rel}
        new = by_v[max(by_v)]
        mets = new.get("metrics") or {}
        src = int(mets.get("restored_from", -1))
        old = (by_v.get(src) or {}).get("metrics") or {}
        ok = q.returncode == 0 and new.get("reason") == "rollback" and src in by_v
        ok = (
            ok
            and old.get("n_learned") == mets.get("n_learned")
            and old.get("accuracy") == mets.get("accuracy")
        )
        return ok, (
            f"exit {q.returncode}; v{new.get('version')} reason {new.get('reason')} restored_from {src}: "
            f"n_learned {mets.get('n_learned')} vs {old.get('n_learned')}, "
            f"accuracy {mets.get('accuracy')} vs {old.get('accuracy')}"
        )

    check("J7", "a rollback release carries the restored version's own n_learned and accuracy", rollback)

    def no_escapes() -> tuple[bool, str]:
        bad = [f.name for f in work.glob("worker-*.log") if "\x1b[" in f.read_text(errors="replace")]
        return not bad, f"logs with terminal escape codes: {bad}"

    check("J8", "worker logs written to a file hold no terminal escape codes", no_escapes)

    # ---------------------------------------------------------------- I: metrics vs README
    documented = readme_metrics()
    scraped = {role: scrape(port) for role, port in stack.ports.items()}
    exported: dict[str, tuple[str, set[str]]] = {}
    for fams in scraped.values():
        for name, fam in fams.items():
            if not name.startswith("driftline_"):
                continue
            labels: set[str] = set()
            for _, s_labels, _ in fam["samples"]:
                labels |= set(s_labels) - {"le", "quantile"}
            typ = fam["type"]
            full = name + "_total" if typ == "counter" else name
            prev = exported.get(full, (typ, set()))
            exported[full] = (typ, prev[1] | labels)
    undocumented = sorted(set(exported) - set(documented))
    never = sorted(set(documented) - set(exported))
    check(
        "I1",
        "every exported driftline_ family is in the README table",
        lambda: (not undocumented, f"not in README: {undocumented}"),
    )
    record(
        "I2",
        "README families seen on some worker's /metrics",
        None if never else True,
        f"not exported by score/join/train here: {never}",
    )
    mismatched = {
        n: (sorted(exported[n][1]), sorted(documented[n]))
        for n in exported
        if n in documented and exported[n][1] and exported[n][1] != documented[n]
    }
    check(
        "I3",
        "labels on /metrics = labels in the README",
        lambda: (not mismatched, f"mismatch (exported, README): {mismatched}"),
    )
    bad_types = [
        n
        for n, (t, _) in exported.items()
        if (n.endswith("_total") and t != "counter")
        or (n.endswith("_seconds") and t not in ("histogram", "gauge"))
    ]
    check(
        "I4",
        "Prometheus naming: _total counters, _seconds histograms",
        lambda: (not bad_types, f"bad: {bad_types}"),
    )
    md = (ROOT / "docs/metrics.md").read_text()
    doc_types = dict(re.findall(r"\| `(driftline_[a-z_]+)` \| (counter|gauge|histogram) \|", md))
    wrong = {
        n: (t, doc_types.get(n)) for n, (t, _) in exported.items() if doc_types.get(n) and doc_types[n] != t
    }
    check(
        "I5",
        "types on /metrics = types in docs/metrics.md",
        lambda: (not wrong, f"(exported, documented): {wrong}"),
    )
    up = {
        role: [
            s[2]
            for s in scraped[role].get("driftline_worker_up", {"samples": []})["samples"]
            if s[1].get("role") == role
        ]
        for role in scraped
    }
    check(
        "I6",
        "each worker says it is up (driftline_worker_up{role})",
        lambda: (all(v == [1.0] for v in up.values()), str(up)),
    )

    # ---------------------------------------------------------------- K: housekeeping and pipes
    q = subprocess.run(
        f"{PY} -m driftline models list | head -1",
        shell=True,
        env=env.vars,
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    check(
        "K1",
        "models list | head -1: no traceback",
        lambda: ("Traceback" not in q.stderr, q.stderr.strip()[:200] or "clean"),
    )
    q = env.run("cleanup", "--prefix", P, "--dry-run", "--json", timeout=120)
    check(
        "K2",
        "cleanup --dry-run --json lists the prefix's topics",
        lambda: (q.returncode == 0 and f"{P}features" in q.stdout, f"exit {q.returncode}: {q.stdout[:160]}"),
    )
    q = env.run("cleanup", "--prefix", "driftline.", "--dry-run", timeout=120)
    check(
        "K3",
        "cleanup of the default prefix without --force is refused (checked with --dry-run)",
        lambda: (q.returncode != 0, f"exit {q.returncode}: {(q.stderr or q.stdout).strip()[:200]}"),
    )

    # ---------------------------------------------------------------- G4: the guard refuses gap-widening candidates
    n_dec0 = len([e for e in env.lines("audit", "show", "--json", "--kind", "decision")])
    q = env.run("models", "set", "guard.fairness_max_gap=0.01", timeout=60)
    learned5 = labels_learned(env)
    f5 = write_jsonl(work / "s5.jsonl", gen_stream(600, 17, 0, "s5-"))
    env.run("produce", "features", "--file", str(f5), "--label-col", "y", "--with-labels", "--label-delay", "20",
            "--rate", "300", timeout=120)  # fmt: skip
    wait_for(lambda: labels_learned(env) >= learned5 + 600, 120, 2)
    new_dec = env.lines("audit", "show", "--json", "--kind", "decision")[n_dec0:]
    refused = [
        e["record"] for e in new_dec if isinstance((e["record"].get("checks") or {}).get("fairness"), str)
    ]

    unmeasured = [
        e["record"]
        for e in new_dec
        if (e["record"].get("evidence") or {}).get("fairness.baseline_segments", 0) < 2
    ]

    def fairness_default_cadence() -> tuple[bool, str]:
        ns = sorted({int((r.get("evidence") or {}).get("n", 0)) for r in unmeasured})
        passed_blind = [r for r in unmeasured if r.get("outcome") == "promote"]
        return bool(new_dec) and not passed_blind, (
            f"{len(new_dec)} decisions after the bound 0.01, {len(refused)} refused on fairness, {len(unmeasured)} "
            f"passed 'fairness: true' with fewer than 2 segments of 30 paired examples (not measured; paired n {ns})"
        )

    check(
        "G4",
        "release_every 40: with guard.fairness_max_gap=0.01 set live, every candidate promoted had its gap measured",
        fairness_default_cadence,
    )
    # the same with enough paired examples per decision (release_every 200) and segment B turning negative
    env.run("models", "set", "release_every=200", timeout=60)
    n_dec1 = len(env.lines("audit", "show", "--json", "--kind", "decision"))
    learned6 = labels_learned(env)
    f6 = write_jsonl(work / "s6.jsonl", gen_stream(1500, 19, 0, "s6-", b_negative=True))
    env.run("produce", "features", "--file", str(f6), "--label-col", "y", "--with-labels", "--label-delay", "20",
            "--rate", "400", timeout=120)  # fmt: skip
    wait_for(lambda: labels_learned(env) >= learned6 + 1500, 180, 2)
    dec6 = env.lines("audit", "show", "--json", "--kind", "decision")[n_dec1:]
    ref6 = [e["record"] for e in dec6 if isinstance((e["record"].get("checks") or {}).get("fairness"), str)]

    def fairness_refusal() -> tuple[bool, str]:
        if not ref6:
            return False, f"{len(dec6)} decisions, none refused on fairness"
        r = ref6[0]
        ev = {k: round(v, 3) for k, v in (r.get("evidence") or {}).items() if "fair" in k or "accuracy" in k}
        return r.get(
            "outcome"
        ) == "reject", f"{len(ref6)} of {len(dec6)} refused; first: {r['checks']['fairness']} {ev}"

    check(
        "G5",
        "release_every 200, segment B turns negative: the guard refuses a gap-widening candidate",
        fairness_refusal,
    )
    env.run("models", "set", "guard.fairness_max_gap=0.3", timeout=60)

    # ---------------------------------------------------------------- L: no trainer, then a late one
    stack.procs["train"].send_signal(signal.SIGTERM)
    stack.procs["train"].wait(timeout=60)
    q = env.run("models", "pause", "--timeout", "5", timeout=60)
    check(
        "L1",
        "no trainer answering: the CLI exits 3 and says what to check",
        lambda: (
            q.returncode == 3 and "trainer" in (q.stderr + q.stdout),
            f"exit {q.returncode}: {(q.stderr + q.stdout).strip()[:220]}",
        ),
    )
    stack.start("train", {"DRIFTLINE__GUARD__HOLD_MARGIN": "0.25"})
    m2 = stack.ports["train"]
    late = wait_for(lambda: metric(m2, "driftline_learning_paused") == 1.0, 120, 2)
    check(
        "L2",
        "a trainer started later applies the command still on control (within control_max_age_s)",
        lambda: (bool(late), f"learning_paused={metric(m2, 'driftline_learning_paused')}"),
    )
    sett = env.json("models", "settings", "--json")["settings"]
    check(
        "L3",
        "a live set outlasts a trainer restart",
        lambda: (
            sett["release_every"]["value"] == 200
            and "set" in sett["release_every"]["source"]
            and sett["guard.alpha"]["value"] == 0.01,
            f"release_every {sett['release_every']}, guard.alpha {sett['guard.alpha']['value']}",
        ),
    )
    env.run("models", "resume", timeout=60)

    # ---------------------------------------------------------------- H5 last: a forged entry on the audit topic
    # a forger without the key: a well-linked entry whose hash is right (SHA-256 needs no key), signature made up
    last = env.lines("audit", "show", "--json", "-n", "1")[-1]
    forged = {k: last[k] for k in ("ts", "kind", "model", "record", "sig_key_id")}
    forged.update({"seq": last["seq"] + 1, "prev": last["hash"]})
    forged["record"] = {**forged["record"], "forged_by": "outside36"}
    text = json.dumps(forged, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    forged["hash"] = hashlib.sha256(text.encode()).hexdigest()
    forged["sig"] = hmac.new(secrets.token_bytes(32), forged["hash"].encode(), hashlib.sha256).hexdigest()
    prod.produce(P + "audit", key=b"default", value=json.dumps(forged).encode())
    prod.flush(10)
    q = env.run("audit", "verify", "--source", "topic", "--json", timeout=120)
    check(
        "H5",
        "a forged entry on the audit topic: verify exits 1 and names it",
        lambda: (
            q.returncode == 1 and "forged" in _kinds(q.stdout),
            f"exit {q.returncode}: kinds {_kinds(q.stdout)}",
        ),
    )
    return 0 if all(r["status"] != "FAIL" for r in RESULTS) else 1


def _alter(line: str) -> str:
    """One audit line with its entry's kind changed (the line is JSON: change the value, not the spacing)."""
    entry = json.loads(line)
    entry["kind"] = "x" + entry["kind"]
    return json.dumps(entry)


def _kinds(verify_json: str) -> list[str]:
    """The problem kinds `audit verify --json` names."""
    try:
        doc = json.loads(verify_json)
    except ValueError:
        return []
    return [p.get("kind") for c in doc.get("checks", []) for p in c.get("problems", [])]


def _find_numbers(obj: Any, word: str) -> list[Any]:
    """Values under keys containing `word`, anywhere in a JSON document."""
    out: list[Any] = []
    if isinstance(obj, dict):
        for k, v in obj.items():
            if word in str(k) and isinstance(v, int | float):
                out.append(v)
            out.extend(_find_numbers(v, word))
    elif isinstance(obj, list):
        for v in obj:
            out.extend(_find_numbers(v, word))
    return out


if __name__ == "__main__":
    sys.exit(main())
