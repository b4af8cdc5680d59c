"""Session 41 (helper first41): issues 11 and 20 driven again from outside, where session 39 (new39) did not look.

Drives driftline through its contract only: the command line, the topics (plain confluent-kafka, JSON commands
signed by hand as the README's Control section says) and each worker's /metrics. Sections (``--only``):

- H: every command's ``--help`` answers (exit 0, an ``examples:`` block), and the ``models set`` example is valid.
- P: ``produce`` with a CSV whose header has spaces and non-ASCII names, a JSON-lines file, standard input;
  ``tail features --json`` shows what was sent.
- C: signed control records with an extra field, a field missing, a field of the wrong type: refused and
  dead-lettered with a reason, and a valid command after them still applied (nothing stalled); two conflicting
  ``models set`` at once from two shells; ``resume`` of a model that does not exist; pause, trainer restarted while
  paused, still paused after.
- S: ``status --json`` / ``doctor --json`` while the broker is frozen (SIGSTOP, ``--kafka-pid``) and while a score
  worker is frozen; /metrics meanwhile; every ``--json`` output parses, also on failure.
- D: ``driftline demo`` killed with SIGKILL (and, separately, hung up: SIGHUP, a closed terminal) half way: are
  its workers and console left running? Then ``demo`` again.

    DRIFTLINE_KAFKA_BOOTSTRAP=127.0.0.1:17092 DRIFTLINE_REDIS_URL=redis://127.0.0.1:17379/0 \\
      DRIFTLINE_STATE_DIR=/tmp/first41-state PYTHONPATH=$PWD \\
      python docs/experiments/first41.py --kafka-pid PID [--only HPCSD] [--out run.json]

A fresh topic prefix per run, removed at the end (``--keep`` keeps it). Uses outside36's harness for the workers.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from outside36 import PY, RESULTS, ROOT, Env, Stack, print_table, producer, record, sign, wait_for

HELP_COMMANDS = [
    [],
    ["stack"],
    ["stack", "up"],
    ["stack", "down"],
    ["stack", "status"],
    ["topics"],
    ["topics", "create"],
    ["topics", "list"],
    ["topics", "describe"],
    ["doctor"],
    ["config"],
    ["config", "show"],
    ["config", "validate"],
    ["worker"],
    ["produce"],
    ["produce", "features"],
    ["produce", "labels"],
    ["produce", "synthetic"],
    ["tail"],
    ["models"],
    ["models", "list"],
    ["models", "show"],
    ["models", "promote"],
    ["models", "rollback"],
    ["models", "pause"],
    ["models", "resume"],
    ["models", "set"],
    ["models", "settings"],
    ["models", "diff"],
    ["replay"],
    ["demo"],
    ["status"],
    ["bench"],
    ["console"],
    ["audit"],
    ["audit", "verify"],
    ["audit", "show"],
    ["cleanup"],
    ["explain"],
]


def section_h(env: Env) -> None:
    bad = []
    for cmd in HELP_COMMANDS:
        q = env.run(*cmd, "--help", timeout=60)
        leaf = cmd and cmd[-1] not in ("stack", "topics", "config", "produce", "models", "audit")
        if q.returncode != 0 or (leaf and "examples:" not in q.stdout):
            bad.append(f"{' '.join(cmd) or '(top)'}: exit {q.returncode}")
    record(
        "H1",
        f"--help of {len(HELP_COMMANDS)} commands: exit 0, leaves show examples",
        not bad,
        "; ".join(bad),
    )
    q = env.run("models", "set", "guard.alpha=0.01", "drift.ph_feature_threshold=200", "--no-wait", "--json")
    record(
        "H2",
        "the `models set` example of --help passes the CLI's own checks",
        q.returncode == 0,
        f"exit {q.returncode}: {(q.stderr or q.stdout).strip()[:200]}",
    )


def tail_ids(env: Env, topic: str) -> list[dict[str, Any]]:
    return [
        r["value"]
        for r in env.lines("tail", topic, "--from-beginning", "-n", "100000", "--json", timeout=180)
    ]


def section_p(env: Env, work: Path) -> None:
    csv_path = work / "odd header.csv"
    csv_path.write_text(
        " id , température (°C) ,city name,  y\n"
        + "".join(f"p41c-{i}, {20 + i % 7}.5 ,Zürich,{i % 2}\n" for i in range(20))
    )
    q = env.run("produce", "features", "--file", str(csv_path), "--label-col", "y", "--with-labels", "--json")
    summary = q.stdout.strip()
    ok = q.returncode == 0
    record(
        "P1",
        "produce a CSV whose header has spaces and non-ASCII names",
        ok,
        f"exit {q.returncode}: {summary or q.stderr.strip()[:200]}",
    )
    try:
        json.loads(summary)
        record("P2", "produce --json prints one JSON object", True, summary[:120])
    except ValueError as exc:
        record("P2", "produce --json prints one JSON object", False, f"{exc}: {summary[:120]!r}")
    sent = [v for v in tail_ids(env, "features") if str(v.get("id", "")).startswith("p41c-")]
    names = sorted(sent[0]["features"]) if sent else []
    record(
        "P3",
        "tail features --json: the names as written, stripped (température (°C), city name)",
        names == ["city name", "température (°C)"] and len(sent) == 20,
        f"{len(sent)} events, features {names}",
    )
    jl = work / "events.jsonl"
    jl.write_text(
        "".join(
            json.dumps({"id": f"p41j-{i}", "größe": i, "y": i % 2}, ensure_ascii=False) + "\n"
            for i in range(10)
        )
    )
    q = env.run("produce", "features", "--file", str(jl), "--label-col", "y", "--with-labels", "--json")
    record(
        "P4",
        "produce a JSON-lines file with a non-ASCII key",
        q.returncode == 0,
        f"exit {q.returncode}: {(q.stdout or q.stderr).strip()[:200]}",
    )
    # Standard input: `--file -` (the Unix convention) and /dev/stdin
    e = dict(env.vars)
    lines = "".join(json.dumps({"id": f"p41s-{i}", "x": i, "y": i % 2}) + "\n" for i in range(5))
    for cid, spec in (("P5", "-"), ("P6", "/dev/stdin")):
        p = subprocess.run(
            [PY, "-m", "driftline", "produce", "features", "--file", spec, "--label-col", "y", "--json"],
            input=lines,
            env=e,
            capture_output=True,
            text=True,
            timeout=120,
            cwd=ROOT,
        )
        record(
            cid,
            f"produce --file {spec} from a pipe (info: stdin support)",
            None if p.returncode else True,
            f"exit {p.returncode}: {(p.stdout or p.stderr).strip()[:220]}",
        )


def section_c(env: Env, stack: Stack, bootstrap: str, work: Path) -> None:
    P = env.prefix
    prod = producer(bootstrap)

    def send(rec: dict[str, Any]) -> None:
        prod.produce(P + "control", key=b"default", value=json.dumps(rec).encode())
        prod.flush(10)

    def dl_control() -> list[dict[str, Any]]:
        return [d for d in tail_ids(env, "deadletter") if d.get("source_topic") == P + "control"]

    before = len(dl_control())
    key = env.key.encode()
    now = int(time.time() * 1000)
    base = {"model": "default", "command": "set", "args": {"release_every": "33"}}
    bad = {
        "extra field": sign(key, {**base, "ts": now, "id": "f41-extra", "bogus": 1}),
        "args missing": sign(key, {"model": "default", "command": "set", "ts": now, "id": "f41-noargs"}),
        "command missing": sign(key, {"model": "default", "args": {}, "ts": now, "id": "f41-nocmd"}),
        "args a list": sign(key, {**base, "args": ["release_every", "33"], "ts": now, "id": "f41-argslist"}),
        "args value a number": sign(
            key, {**base, "args": {"release_every": 33}, "ts": now, "id": "f41-argsnum"}
        ),
        "ts a string": sign(key, {**base, "ts": str(now), "id": "f41-tsstr"}),
        "command a number": sign(key, {**base, "command": 3, "ts": now, "id": "f41-cmdnum"}),
        "model null": sign(key, {**base, "model": None, "ts": now, "id": "f41-modelnull"}),
    }
    for rec in bad.values():
        send(rec)
    good = sign(
        key,
        {"model": "default", "command": "set", "args": {"release_every": "44"}, "ts": now, "id": "f41-good"},
    )
    send(good)
    applied = wait_for(
        lambda: env.json("models", "settings", "--json")["settings"]["release_every"]["value"] == 44, 60
    )
    record(
        "C1",
        "a valid command after 8 malformed ones is applied (nothing stalled)",
        bool(applied),
        f"release_every 44: {bool(applied)}",
    )
    wait_for(lambda: len(dl_control()) - before >= len(bad), 60)
    dls = dl_control()[before:]
    errs = {}
    for d in dls:
        try:
            sent = json.loads(base64.b64decode(d["value"]))
        except Exception:
            sent = {}
        errs[sent.get("id", "?") if isinstance(sent, dict) else "?"] = d.get("error", "")[:300]
    record(
        "C2",
        "each malformed signed command dead-lettered once",
        len(dls) == len(bad),
        f"{len(dls)} for {len(bad)}",
    )
    for n, (what, rec) in enumerate(bad.items()):
        record(
            f"C2{'abcdefgh'[n]}",
            f"signed command, {what}: the dead letter's reason (info)",
            None,
            errs.get(rec["id"], "(no dead letter)"),
        )
    # two shells, conflicting sets at the same moment
    procs = [
        subprocess.Popen(
            [PY, "-m", "driftline", "models", "set", f"release_every={v}", "--json"],
            env=env.vars,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        for v in (51, 52)
    ]
    outs = [p.communicate(timeout=120) for p in procs]
    rcs = [p.returncode for p in procs]
    live = env.json("models", "settings", "--json")["settings"]["release_every"]
    record(
        "C3",
        "two conflicting `models set` at once: both answered, settings shows one of them with its source",
        rcs == [0, 0] and live["value"] in (51, 52),
        f"exits {rcs}; live {live}; answers {[o[0].strip()[:80] for o in outs]}",
    )
    q = env.run("--model", "ghost", "models", "resume")
    record(
        "C4",
        "resume of a model that does not exist: non-zero, names the models",
        q.returncode != 0 and "default" in q.stdout + q.stderr,
        f"exit {q.returncode}: {(q.stdout + q.stderr).strip()[:200]}",
    )
    q = env.run("models", "pause")
    stack.procs["train"].send_signal(signal.SIGTERM)
    stack.procs["train"].wait(60)
    stack.start("train")
    wait_for(lambda: env.json("models", "show", "--json"), 90, 2)
    time.sleep(5)
    show = env.json("models", "show", "--json")
    text = json.dumps(show)
    paused = '"paused": true' in text or '"learning_paused": true' in text
    record(
        "C5",
        "pause, trainer restarted: still paused (models show)",
        paused,
        f"pause exit {q.returncode}; {text[:200]}",
    )
    q = env.run("models", "resume")
    record("C6", "resume after the restart applied", q.returncode == 0, (q.stdout + q.stderr).strip()[:160])


def section_s(env: Env, stack: Stack, kafka_pid: int | None) -> None:
    def timed(*args: str) -> tuple[float, subprocess.CompletedProcess[str]]:
        t0 = time.monotonic()
        q = env.run(*args, timeout=180)
        return time.monotonic() - t0, q

    def parses(text: str) -> bool:
        try:
            json.loads(text)
            return True
        except ValueError:
            return False

    # a frozen score worker
    score = stack.procs["score"]
    os.kill(score.pid, signal.SIGSTOP)
    try:
        found = None
        t0 = time.monotonic()
        while time.monotonic() - t0 < 90:
            dt, q = timed("status", "--json")
            if "overdue" in q.stdout and '"overdue": true' in q.stdout:
                found = (time.monotonic() - t0, q.returncode)
                break
            time.sleep(5)
        dt, q = timed("status")
        record(
            "S1",
            "status names a frozen (SIGSTOP) scorer as overdue",
            found is not None,
            f"after {found}; text: {[ln for ln in q.stdout.splitlines() if 'score' in ln.lower()][:3]}",
        )
        try:
            import urllib.request

            urllib.request.urlopen(f"http://127.0.0.1:{stack.ports['score']}/metrics", timeout=3)
            m = "answered"
        except Exception as exc:
            m = f"no answer ({type(exc).__name__})"
        record("S2", "/metrics of the frozen scorer (info)", None, m)
    finally:
        os.kill(score.pid, signal.SIGCONT)
    if kafka_pid:
        os.kill(kafka_pid, signal.SIGSTOP)
        try:
            for cid, args in (
                ("S3", ("status", "--json")),
                ("S4", ("doctor", "--json")),
                ("S5", ("models", "list", "--json")),
                ("S6", ("models", "settings", "--json")),
                ("S7", ("topics", "list", "--json")),
                ("S8", ("stack", "status", "--json")),
            ):
                dt, q = timed(*args)
                out = q.stdout.strip()
                ok = q.returncode != 0 and (
                    out == ""
                    or parses(out.splitlines()[0] if args[0] == "models" and args[1] == "list" else out)
                )
                record(
                    cid,
                    f"{' '.join(args)} with the broker frozen: answers, non-zero, stdout JSON or empty",
                    ok,
                    f"{dt:.1f}s exit {q.returncode}; stdout {out[:120]!r}; stderr {q.stderr.strip()[-200:]!r}",
                )
        finally:
            os.kill(kafka_pid, signal.SIGCONT)


def section_d(env: Env, work: Path) -> None:
    for cid, sig in (("D1", signal.SIGKILL), ("D2", signal.SIGHUP)):
        prefix = f"f41demo-{uuid.uuid4().hex[:6]}."
        e = dict(env.vars)
        e.pop("DRIFTLINE_TOPIC_PREFIX", None)
        e.pop("DRIFTLINE_CONFIG", None)
        e.pop("DRIFTLINE_SIGNING_KEY", None)
        log = open(work / f"demo-{cid}.log", "wb")  # noqa: SIM115
        demo = subprocess.Popen(
            [
                PY,
                "-m",
                "driftline",
                "--topic-prefix",
                prefix,
                "demo",
                "--events",
                "4000",
                "--rate",
                "50",
                "--no-live",
            ],
            env=e,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            start_new_session=True,
            # SIGHUP as a terminal's shell leaves it (a `nohup` around this script would have the demo ignore it)
            preexec_fn=lambda: signal.signal(signal.SIGHUP, signal.SIG_DFL),
        )

        def children(demo: subprocess.Popen[bytes] = demo, prefix: str = prefix) -> list[int]:
            out = []
            for d in Path("/proc").iterdir():
                if not d.name.isdigit() or int(d.name) == demo.pid:
                    continue
                try:
                    if f"DRIFTLINE_TOPIC_PREFIX={prefix}".encode() in (d / "environ").read_bytes():
                        out.append(int(d.name))
                except OSError:
                    pass
            return out

        kids = wait_for(lambda: len(children()) >= 4 and children(), 120, 2)
        time.sleep(15)
        kids = children()
        os.kill(demo.pid, sig)
        demo.wait(30)
        time.sleep(20)
        left = [pid for pid in kids if Path(f"/proc/{pid}").exists()]
        cmds = [Path(f"/proc/{p}/cmdline").read_bytes().replace(b"\0", b" ").decode()[-40:] for p in left]
        record(
            cid,
            f"demo killed by {sig.name} half way: its {len(kids)} child processes gone 20 s later",
            not left,
            f"still running: {cmds}",
        )
        for pid in left:
            os.kill(pid, signal.SIGTERM)
        wait_for(lambda left=left: not any(Path(f"/proc/{p}").exists() for p in left), 40)
        env.run("cleanup", "--prefix", prefix, "--force", timeout=180, env={"DRIFTLINE_TOPIC_PREFIX": prefix})


def section_d3(env: Env, work: Path) -> None:
    """`demo` when its Kafka port is held by something that is not Kafka: a clear message naming the port, and
    nothing left started (its Redis port stays free)."""
    import socket

    from outside36 import free_port

    held = socket.socket()
    held.bind(("127.0.0.1", 0))
    held.listen(5)
    kport, rport = held.getsockname()[1], free_port()
    e = {
        "DRIFTLINE_KAFKA_BOOTSTRAP": f"127.0.0.1:{kport}",
        "DRIFTLINE_REDIS_URL": f"redis://127.0.0.1:{rport}/0",
        "DRIFTLINE_STATE_DIR": str(work / "held-state"),
    }
    try:
        t0 = time.monotonic()
        q = env.run("demo", "--events", "200", "--no-live", "--no-console", timeout=300, env=e)
        dt = time.monotonic() - t0
        with socket.socket() as probe:
            redis_left = probe.connect_ex(("127.0.0.1", rport)) == 0
        msg = q.stderr.strip().splitlines()[-1:] or [""]
        record(
            "D3",
            "demo with its Kafka port held by a non-Kafka process: non-zero, names the port, starts nothing",
            q.returncode != 0 and str(kport) in q.stderr and not redis_left,
            f"{dt:.0f}s exit {q.returncode}; redis left on {rport}: {redis_left}; {msg[0][:220]}",
        )
    finally:
        held.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--out")
    ap.add_argument("--only", default="HPCSD")
    ap.add_argument("--kafka-pid", type=int)
    args = ap.parse_args()
    bootstrap = os.environ.get("DRIFTLINE_KAFKA_BOOTSTRAP", "")
    if not bootstrap or not os.environ.get("DRIFTLINE_REDIS_URL") or bootstrap.endswith(":9092"):
        print("set DRIFTLINE_KAFKA_BOOTSTRAP / DRIFTLINE_REDIS_URL to your own stack", file=sys.stderr)
        return 2
    run_id = uuid.uuid4().hex[:8]
    prefix = f"f41-{run_id}."
    work = Path(tempfile.mkdtemp(prefix=f"first41-{run_id}-"))
    cfg = work / "cfg.yaml"
    cfg.write_text("model:\n  learner: {name: logistic_regression, params: {}}\n  release_every: 25\n")
    env = Env(prefix, work / "state", cfg, secrets.token_hex(32))
    print(f"prefix {prefix} work {work}", flush=True)
    stack = Stack(env, work)
    try:
        env.run("topics", "create")
        if "H" in args.only:
            section_h(env)
        if "P" in args.only:
            section_p(env, work)
        if set("CS") & set(args.only):
            for role in ("score", "join", "train"):
                stack.start(role)
            wait_for(lambda: env.json("models", "show", "--json"), 120, 2)
            if "C" in args.only:
                section_c(env, stack, bootstrap, work)
            if "S" in args.only:
                section_s(env, stack, args.kafka_pid)
        if "D" in args.only:
            section_d3(env, work)
            section_d(env, work)
        return 0
    finally:
        stack.stop()
        if not args.keep:
            env.run("cleanup", "--prefix", prefix, "--json", timeout=180)
            shutil.rmtree(work, ignore_errors=True)
        print_table()
        if args.out:
            Path(args.out).write_text(json.dumps(RESULTS, indent=1))


if __name__ == "__main__":
    sys.exit(main())
