"""Issues 19 (governance) and 18 (console) checked from outside once more (session 42), where gov40 did not look.

Only the public surface: the command line, the topics (plain confluent-kafka JSON), the records, the workers'
/metrics and the console's pages and /api/. New compared with gov40.py / outside36.py / outside37.py:

- River's Agrawal stream (nine numeric features) with a sensitive attribute `region` that is a *number* with 30
  values, missing on some events, whose value 29 appears only in the last third of the stream (a late slice);
- two models at once with unusual but valid names (`Risk.v2-eu_1`, the default, and `0`, chosen by the event's
  `model` field), logistic regression with `explain: false` (explanations come from the verified releases);
- labels late (30 to 150 events) and out of order, some before their event;
- two workers of each role (score, join, train), the two trainers with *different state dirs* (two machines), one
  trainer restarted in the middle of the stream;
- the console against what the topics hold (served version, lineage, dead letters), its actions end to end
  (pause with labels arriving, resume, rollback, refusals, each in the audit trail);
- `explain` of a prediction served before a later promotion and of one served after a rollback;
- the `audit` topic's configuration changed to compaction (does anything say so; does `audit verify` see what
  the log cleaner removed).

    DRIFTLINE_KAFKA_BOOTSTRAP=127.0.0.1:15092 DRIFTLINE_REDIS_URL=redis://127.0.0.1:15379/0 \\
        PYTHONPATH=$PWD nice -n 5 python docs/experiments/gov42.py [--events 3000] [--keep] [--out r.json]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import gov40 as g40  # http, jget, act
import outside36 as o36  # Env, check, record, scrape, wait_for, free_port

check, record, wait_for, RESULTS = o36.check, o36.record, o36.wait_for, o36.RESULTS
PY, ROOT = o36.PY, o36.ROOT
TOKEN = "g42-" + uuid.uuid4().hex
M1, M2 = "Risk.v2-eu_1", "0"


def gen_stream(n: int, seed: int) -> list[dict[str, Any]]:
    """Agrawal (function 2, then 5 from the middle: a concept drift), `region` 0..28 (a number), 29 only in the
    last third (30 % of it), missing on 8 % of events; every third event for model `0`, whose producer sends the
    region as a float (`7.0`) on every other event."""
    from river.datasets import synth

    rng = random.Random(seed)
    first = synth.Agrawal(classification_function=2, seed=seed)
    second = synth.Agrawal(classification_function=5, seed=seed + 1)
    rows = []
    src = iter(first.take(n // 2))
    for i in range(n):
        if i == n // 2:
            src = iter(second.take(n - n // 2))
        x, y = next(src)
        feats: dict[str, Any] = {k: (round(v, 3) if isinstance(v, float) else v) for k, v in x.items()}
        if i >= 2 * n // 3 and rng.random() < 0.3:
            feats["region"] = 29
        elif rng.random() >= 0.08:
            feats["region"] = rng.randrange(29)
        model = M2 if i % 3 == 2 else M1
        if model == M2 and i % 2 and "region" in feats:
            feats["region"] = float(feats["region"])  # another producer: the same number as a JSON float
        rows.append({"id": f"g42-{i}", "model": model, "features": feats, "y": int(y)})
    return rows


def publish(prod: Any, prefix: str, rows: list[dict[str, Any]], rate: float, rng: random.Random) -> None:
    """Features at `rate`/s; each label 30-150 events later (so out of order), 1 % of labels before their event."""
    due: dict[int, list[dict[str, Any]]] = defaultdict(list)
    t0 = time.monotonic()

    def label(r: dict[str, Any]) -> None:
        lab = {"id": r["id"], "ts": int(time.time() * 1000), "label": r["y"]}
        prod.produce(prefix + "labels", json.dumps(lab).encode(), key=r["id"].encode())

    for i, r in enumerate(rows):
        early = rng.random() < 0.01
        if early:
            label(r)
        ev = {
            "id": r["id"],
            "ts": int(time.time() * 1000),
            "key": None,
            "model": r["model"],
            "features": r["features"],
        }
        prod.produce(prefix + "features", json.dumps(ev).encode(), key=r["id"].encode())
        if not early:
            due[i + rng.randint(30, 150)].append(r)
        for lr in due.pop(i, []):
            label(lr)
        prod.poll(0)
        ahead = (i + 1) / rate - (time.monotonic() - t0)
        if ahead > 0:
            time.sleep(ahead)
    for k in sorted(due):
        for lr in due[k]:
            label(lr)
    assert prod.flush(60) == 0


class Workers:
    """Named worker processes (two of each role), each with its own env overrides and metrics port."""

    def __init__(self, env: o36.Env, work: Path):
        self.env, self.work = env, work
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.ports: dict[str, int] = {}

    def start(self, name: str, role: str, extra: dict[str, str] | None = None) -> None:
        port = o36.free_port()
        e = dict(self.env.vars)
        e.update(extra or {})
        log = open(self.work / f"{name}.log", "ab")  # noqa: SIM115 - closed with the process
        self.procs[name] = subprocess.Popen(
            [PY, "-m", "driftline", "worker", "--role", role, "--metrics-port", str(port)],
            env=e,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            start_new_session=True,
        )
        self.ports[name] = port

    def stop(self, name: str) -> None:
        p = self.procs[name]
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(60)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()

    def stop_all(self) -> None:
        for name in list(self.procs):
            self.stop(name)


def learned(env: o36.Env, model: str) -> int:
    s = _show(env, model)
    return int(s.get("labels_learned", 0) or 0)


def _show(env: o36.Env, model: str) -> dict[str, Any]:
    p = env.run("--model", model, "models", "show", "--json", timeout=120)
    if p.returncode != 0:
        raise RuntimeError(f"models show --model {model}: exit {p.returncode} {p.stderr[-300:]}")
    return dict(json.loads(p.stdout))


def topic(env: o36.Env, name: str) -> list[dict[str, Any]]:
    return [
        r["value"]
        for r in env.lines("tail", name, "--from-beginning", "--json", "-n", "1000000", timeout=300)
    ]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=3000)
    ap.add_argument("--rate", type=float, default=120)
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--out")
    args = ap.parse_args()
    bootstrap = os.environ.get("DRIFTLINE_KAFKA_BOOTSTRAP")
    if not bootstrap or not os.environ.get("DRIFTLINE_REDIS_URL"):
        print("set DRIFTLINE_KAFKA_BOOTSTRAP and DRIFTLINE_REDIS_URL to the stack to check", file=sys.stderr)
        return 2
    run_id = uuid.uuid4().hex[:8]
    prefix = f"g42-{run_id}."
    work = Path(tempfile.mkdtemp(prefix=f"gov42-{run_id}-"))
    cfg = work / "cfg.yaml"
    cfg.write_text(
        f"model:\n  name: {M1}\n  learner: {{name: logistic_regression, params: {{}}}}\n"
        "  segment_feature: region\n  release_every: 25\n"
        f"routing:\n  models: ['{M1}', '{M2}']\nguard:\n  fairness_max_gap: 0.6\n"
    )
    env = o36.Env(prefix, work / "stA", cfg, secrets.token_hex(32), {"DRIFTLINE_CONSOLE_TOKEN": TOKEN})
    workers = Workers(env, work)
    consoles: list[subprocess.Popen[bytes]] = []
    print(f"prefix {prefix}  work {work}", flush=True)
    try:
        scenario(env, workers, consoles, work, bootstrap, args)
    finally:
        for c in consoles:
            if c.poll() is None:
                c.terminate()
                c.wait(30)
        workers.stop_all()
        if not args.keep:
            p = env.run("cleanup", "--prefix", prefix, "--force", "--json", timeout=180)
            print(f"cleanup --prefix {prefix}: exit {p.returncode}", flush=True)
            shutil.rmtree(work, ignore_errors=True)
        o36.print_table()
        if args.out:
            Path(args.out).write_text(json.dumps(RESULTS, indent=1))
    return 0 if all(r["status"] != "FAIL" for r in RESULTS) else 1


def console(
    env: o36.Env, work: Path, consoles: list[Any], model: str | None = None, state: Path | None = None
) -> str:
    port = o36.free_port()
    e = dict(env.vars)
    if state is not None:
        e["DRIFTLINE_STATE_DIR"] = str(state)
    extra = ["--model", model] if model else []
    log = open(work / f"console-{port}.log", "wb")  # noqa: SIM115
    consoles.append(
        subprocess.Popen(
            [PY, "-m", "driftline", *extra, "console", "--port", str(port)],
            env=e,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            start_new_session=True,
        )
    )
    base = f"http://127.0.0.1:{port}/"
    wait_for(lambda: g40.http(base + "static/style.css", timeout=5)[0] == 200, 90, 0.5)
    return base


APIS = ("status", "overview", "models", "models/current", "lineage", "quality", "deadletters", "audit")


def poll_apis(bases: list[str], out: list[tuple[str, int]], stop: threading.Event) -> None:
    """GET every read API of each console in turn until `stop`; (url, status) of each, 0 for no answer in 60 s."""
    while not stop.is_set():
        for b in bases:
            for api in APIS:
                try:
                    status = g40.http(b + "api/" + api, timeout=60)[0]
                except Exception:  # a timeout or a refused connection is the finding
                    status = 0
                out.append((b + "api/" + api, status))
        stop.wait(1.0)


def answered(base: str, cid: str | None, timeout: float = 120) -> dict[str, Any]:
    if not cid:
        return {}
    got = wait_for(lambda: (a := g40.jget(base + f"api/actions/{cid}")[1]).get("answered") and a, timeout, 1)
    return got or {}


def send(base: str, body: Any) -> tuple[int, dict[str, Any], dict[str, Any]]:
    s, sent = g40.act(base, body, token=TOKEN)
    cid = (sent.get("sent") or {}).get("id") if isinstance(sent, dict) else None
    return s, sent if isinstance(sent, dict) else {"raw": str(sent)}, answered(base, cid)


def audit_ids(env: o36.Env, model: str) -> set[Any]:
    return {(e.get("record") or {}).get("id") for e in env.lines("--model", model, "audit", "show", "--json")}


def served(doc: Any) -> dict[str, Any]:
    """{model: served_version} wherever the status document lists a model with its served version."""
    out: dict[str, Any] = {}

    def walk(o: Any) -> None:
        if isinstance(o, dict):
            if "model" in o and "served_version" in o and "releases" in o:
                out[str(o["model"])] = o["served_version"]
            for v in o.values():
                walk(v)
        elif isinstance(o, list):
            for v in o:
                walk(v)

    walk(doc)
    return out


def logit_sum_ok(doc: dict[str, Any]) -> tuple[bool, str]:
    contrib = doc.get("contributions") or {}
    proba = doc.get("proba") or {}
    pred = str(doc.get("prediction"))
    p = proba.get(pred)
    if not contrib or p is None:
        return False, f"contributions {len(contrib)} proba {proba} prediction {pred}"
    if not 0 < p < 1:  # a model that has seen one class answers 1.0: no finite log-odds to add up to
        return True, f"{len(contrib)} contributions; proba {proba} (one class seen: the sum is not compared)"
    total = sum(contrib.values())
    return abs(total - math.log(p / (1 - p))) < 1e-6, f"sum {total:.6f} logit {math.log(p / (1 - p)):.6f}"


def scenario(
    env: o36.Env, w: Workers, consoles: list[Any], work: Path, bootstrap: str, args: argparse.Namespace
) -> None:
    from confluent_kafka import Producer

    P = env.prefix
    stA, stB = work / "stA", work / "stB"
    assert env.run("topics", "create", "--json").returncode == 0
    for role in ("score", "join"):
        w.start(f"{role}1", role)
        w.start(f"{role}2", role)
    w.start("trainA", "train")
    w.start("trainB", "train", {"DRIFTLINE_STATE_DIR": str(stB)})
    base = console(env, work, consoles)
    base2 = console(env, work, consoles, model=M2)
    rows = gen_stream(args.events, 42)
    rng = random.Random(7)
    prod = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5})
    # poison: dead letters the console must show, as the topic holds them
    for raw in (
        b"{not json",
        b'{"id": 5}',
        json.dumps({"id": "x", "ts": 1, "features": {"a": [1]}}).encode(),
    ):
        prod.produce(P + "features", raw, key=b"poison")
    prod.produce(P + "labels", json.dumps({"id": "g42-1", "ts": 1, "label": {"x": 1}}).encode(), key=b"g42-1")
    t0 = time.monotonic()
    third = len(rows) // 3
    publish(prod, P, rows[:third], args.rate, rng)
    # explanation of a prediction served early, before later promotions
    early_preds = wait_for(
        lambda: [
            p for p in topic(env, "predictions") if p.get("model") == M1 and (p.get("version") or 0) >= 2
        ],
        240,
        3,
    )
    publish(prod, P, rows[third : 2 * third], args.rate, rng)
    w.stop("trainA")  # a trainer restarted in the middle of the stream
    time.sleep(3)
    w.start("trainA", "train")
    polls: list[tuple[str, int]] = []
    stop_polling = threading.Event()
    poller = threading.Thread(target=poll_apis, args=([base, base2], polls, stop_polling), daemon=True)
    poller.start()
    publish(prod, P, rows[2 * third :], args.rate, rng)
    want = Counter(r["model"] for r in rows)
    done = wait_for(lambda: all(learned(env, m) >= want[m] for m in (M1, M2)), 600, 3)
    print(f"published {len(rows)}, learned: {bool(done)} in {time.monotonic() - t0:.0f} s", flush=True)
    stop_polling.set()
    poller.join(60)
    bad = [(u, c) for u, c in polls if c != 200]
    record(
        "C0",
        "every console API of both consoles answers 200 while events stream, a trainer restarted just before",
        bool(polls) and not bad,
        f"{len(polls)} requests, {len(bad)} not 200: {bad[:6]}",
    )

    # ---------------------------------------------------------------- S: the pipeline
    record(
        "S1",
        "every label learned by its model (out of order, late, some before their event; a trainer restarted)",
        bool(done),
        f"{M1}: {learned(env, M1)} of {want[M1]}; {M2}: {learned(env, M2)} of {want[M2]}",
    )
    preds = topic(env, "predictions")
    by_model: dict[str, set[str]] = defaultdict(set)
    for p in preds:
        by_model[str(p.get("model"))].add(str(p.get("id")))
    wrong = {m: len(by_model[m] ^ {r["id"] for r in rows if r["model"] == m}) for m in (M1, M2)}
    record(
        "S2",
        "every event predicted by the model it named, none by the other",
        all(v == 0 for v in wrong.values()) and set(by_model) == {M1, M2},
        f"models on predictions {sorted(by_model)}; ids differing per model {wrong}; {len(preds)} predictions",
    )

    # ---------------------------------------------------------------- A: the audit trail, two trainers
    releases = [r for r in topic(env, "models")]
    rel_versions = {m: sorted({int(r["version"]) for r in releases if r.get("model") == m}) for m in (M1, M2)}
    for m in (M1, M2):
        aud = env.lines("--model", m, "audit", "show", "--source", "topic", "--json")
        audited = {int((e.get("record") or {}).get("version", -1)) for e in aud if e.get("kind") == "release"}
        missing = [v for v in rel_versions[m] if v not in audited]
        record(
            f"A1{m[0]}",
            f"every release of model {m} on `models` has an audit entry on the topic",
            not missing and bool(rel_versions[m]),
            f"{len(rel_versions[m])} releases, {len(aud)} audit entries; not audited {missing[:10]}",
        )
    for label, st in (("A", stA), ("B", stB)):
        q = env.run("audit", "verify", "--json", env={"DRIFTLINE_STATE_DIR": str(st)}, timeout=180)
        try:
            doc = json.loads(q.stdout)
            checks = doc if isinstance(doc, list) else doc.get("checks", [])
        except ValueError:
            checks = []
        bad = [
            f"{c.get('model')}/{c.get('source')}: {(c.get('problems') or [{}])[0].get('text', '')[:150]}"
            for c in checks
            if not c.get("ok")
        ]
        files = sorted(p.name for p in (st / "audit").glob("*.jsonl")) if (st / "audit").exists() else []
        record(
            f"A2{label}",
            f"`audit verify` on trainer {label}'s machine (its state dir) after the models moved between trainers",
            q.returncode == 0,
            f"exit {q.returncode}; chain files {files}; failing {bad[:3]}; {q.stderr.strip()[-200:]}",
        )

    # ---------------------------------------------------------------- F: fairness on a numeric attribute
    fam_rates: dict[str, dict[str, float]] = defaultdict(dict)
    fam_gaps: dict[str, float] = {}
    for name in ("trainA", "trainB"):
        fams = o36.scrape(w.ports[name])
        for _n, lab, v in fams.get("driftline_fairness_rate", {"samples": []})["samples"]:
            if lab.get("model") in (M1, None):
                fam_rates[lab.get("segment", "?")][lab.get("rate", "?")] = v
        for _n, lab, v in fams.get("driftline_fairness_gap", {"samples": []})["samples"]:
            if lab.get("model") in (M1, None):
                fam_gaps[lab.get("gap", "?")] = v
    segs = sorted(fam_rates, key=lambda s: (len(s), s))
    record(
        "F1",
        "per-segment rates of a numeric attribute: `29` (seen only late) and `missing` measured, gaps present",
        "29" in segs and "missing" in segs and "demographic_parity" in fam_gaps,
        f"{len(segs)} segments {segs[:8]}...{segs[-4:]}; gaps {fam_gaps}",
    )
    last = _show(env, M1)
    metrics = last.get("metrics") or {}
    seg_keys = sorted({k[len("segment.") : k.rindex(".")] for k in metrics if k.startswith("segment.")})
    record(
        "F2",
        "the served release's metrics name the late segment `29`",
        "29" in seg_keys,
        f"v{last.get('version')} segments in metrics {seg_keys[:40]}",
    )

    m2 = _show(env, M2).get("metrics") or {}
    seg2 = sorted({k[len("segment.") : k.rindex(".")] for k in m2 if k.startswith("segment.")})
    twins = sorted(s for s in seg2 if s.endswith(".0") and s[:-2] in seg2)
    record(
        "F3",
        f"model `{M2}`: a region sent as 7 by one producer and 7.0 by another is one segment",
        not twins,
        f"segments twice (int and float): {twins[:10]} of {len(seg2)}",
    )

    # ---------------------------------------------------------------- C: console = topics
    cur = g40.jget(base + "api/models/current")[1]
    s_show = _show(env, M1)
    record(
        "C1",
        f"console /api/models/current of {M1} = `models show`",
        isinstance(cur, dict) and cur.get("version") == s_show.get("version") and cur.get("model") == M1,
        f"console v{cur.get('version') if isinstance(cur, dict) else cur} model "
        f"{cur.get('model') if isinstance(cur, dict) else '-'}; show v{s_show.get('version')}",
    )
    lin = g40.jget(base + "api/lineage")[1]
    lin_versions = (
        sorted(int(r.get("version")) for r in (lin.get("releases") or [])) if isinstance(lin, dict) else []
    )
    record(
        "C2",
        "console lineage = every release of its model on `models` (none of the other model)",
        lin_versions == rel_versions[M1],
        f"lineage {len(lin_versions)} versions {lin_versions[-5:]}; "
        f"topic {len(rel_versions[M1])} {rel_versions[M1][-5:]}",
    )
    dls = topic(env, "deadletter")
    api_dl = g40.jget(base + "api/deadletters")[1]
    record(
        "C3",
        "console dead letters: the total = records on `deadletter`",
        isinstance(api_dl, dict) and api_dl.get("total") == len(dls),
        f"topic {len(dls)}; api total {api_dl.get('total') if isinstance(api_dl, dict) else api_dl}, "
        f"reasons {Counter(d.get('error', '')[:40] for d in dls).most_common(3)}",
    )
    cur2 = g40.jget(base2 + "api/models/current")[1]
    s2 = _show(env, M2)
    lin2 = g40.jget(base2 + "api/lineage")[1]
    v2 = sorted(int(r.get("version")) for r in (lin2.get("releases") or [])) if isinstance(lin2, dict) else []
    record(
        "C4",
        f"a console for model `{M2}` (`--model 0`): current = `models show`, lineage = its releases",
        isinstance(cur2, dict) and cur2.get("version") == s2.get("version") and v2 == rel_versions[M2],
        f"console v{cur2.get('version') if isinstance(cur2, dict) else cur2}, show v{s2.get('version')}; "
        f"lineage {len(v2)} topic {len(rel_versions[M2])}",
    )
    st_api = g40.jget(base + "api/status")[1]
    st_cli = env.json("status", "--json", timeout=180)
    record(
        "C5",
        "console /api/status: the same served versions as `status --json`",
        served(st_api) == served(st_cli) and bool(served(st_cli)),
        f"api {served(st_api)}; cli {served(st_cli)}",
    )

    # ---------------------------------------------------------------- E: explain before a promotion
    early = early_preds[0] if early_preds else {}
    q = env.run("--model", M1, "explain", str(early.get("id")), "--json", timeout=180)
    try:
        doc = json.loads(q.stdout)
    except ValueError:
        doc = {}
    ok, det = logit_sum_ok(doc)
    record(
        "E1",
        "explain ID of a prediction served by an early version (explain off): that version's release explains it",
        q.returncode == 0 and doc.get("version") == early.get("version") and ok,
        f"id {early.get('id')} served v{early.get('version')} (now v{s_show.get('version')}); explain exit "
        f"{q.returncode} v{doc.get('version')} method {doc.get('method')}; {det}; {q.stderr.strip()[-160:]}",
    )
    # a prediction of model 0, explained with --model 0
    p0 = next((p for p in reversed(preds) if p.get("model") == M2 and (p.get("version") or 0) >= 2), {})
    q = env.run("--model", M2, "explain", str(p0.get("id")), "--json", timeout=180)
    try:
        doc = json.loads(q.stdout)
    except ValueError:
        doc = {}
    ok, det = logit_sum_ok(doc)
    record(
        "E2",
        f"explain of a prediction of model `{M2}`",
        q.returncode == 0 and doc.get("model", M2) == M2 and doc.get("version") == p0.get("version") and ok,
        f"id {p0.get('id')} v{p0.get('version')}; exit {q.returncode} v{doc.get('version')} {det}; "
        f"{q.stderr.strip()[-160:]}",
    )

    # ---------------------------------------------------------------- C: actions end to end
    s, sent, ans = send(base, {"action": "pause"})
    extra = gen_stream(300, 99)
    for r in extra:
        r["id"] = r["id"].replace("g42-", "g42p-")
        r["model"] = M1
    n_before = learned(env, M1)
    publish(prod, P, extra, args.rate, rng)
    time.sleep(15)
    n_paused = learned(env, M1)
    held = env.json("--model", M1, "models", "settings", "--json") or {}
    record(
        "C6",
        "console pause: applied, audited; labels arriving meanwhile are not learned",
        s == 200
        and ans.get("applied") is True
        and n_paused == n_before
        and sent.get("sent", {}).get("id") in audit_ids(env, M1),
        f"POST {s}; answer {ans.get('outcome')}; learned {n_before} -> {n_paused} while paused; "
        f"settings paused {json.dumps(held.get('paused', held.get('settings', {}).get('paused')))[:80]}",
    )
    s, sent, ans = send(base, {"action": "resume"})
    got = wait_for(lambda: learned(env, M1) >= n_before + len(extra), 240, 3)
    record(
        "C7",
        "console resume: applied, audited, the held labels learned",
        s == 200
        and ans.get("applied") is True
        and bool(got)
        and sent.get("sent", {}).get("id") in audit_ids(env, M1),
        f"POST {s}; answer {ans.get('outcome')}; learned {learned(env, M1)} of {n_before + len(extra)}",
    )
    before = _show(env, M1).get("version")
    s, sent, ans = send(base, {"action": "rollback"})
    after = wait_for(
        lambda: (v := g40.jget(base + "api/models/current")[1].get("version")) != before and v, 90, 1
    )
    cur = g40.jget(base + "api/models/current")[1]
    record(
        "C8",
        "console rollback: applied, a rollback release served, audited",
        s == 200
        and ans.get("applied") is True
        and cur.get("reason") == "rollback"
        and sent.get("sent", {}).get("id") in audit_ids(env, M1),
        f"POST {s}; answer {ans.get('outcome')}; v{before} -> v{after} reason {cur.get('reason')}",
    )
    # unsafe actions: refused by the console (400) or by the trainer (answered refused, audited)
    unsafe = {
        "promote held (none held)": {"action": "promote", "target": "held"},
        "promote a version above the newest": {"action": "promote", "target": str(int(after or 0) + 50)},
        "set guard.alpha=2": {"action": "set", "key": "guard.alpha", "value": "2"},
        "set model.learner": {"action": "set", "key": "model.learner", "value": "x"},
    }
    res = {}
    for name, body in unsafe.items():
        s, sent, ans = send(base, body)
        cid = (sent.get("sent") or {}).get("id")
        res[name] = (
            s,
            str(ans.get("outcome", sent.get("error", "")))[:70],
            cid in audit_ids(env, M1) if cid else None,
        )
    record(
        "C9",
        "unsafe console actions refused (400 before sending, or the trainer's refusal, audited)",
        all(s == 400 or (s == 200 and str(o).startswith("refused") and a) for s, o, a in res.values()),
        json.dumps(res)[:400],
    )
    # the pipeline keeps serving the rollback release: a prediction served by it, explained
    post = gen_stream(60, 123)
    for r in post:
        r["id"] = r["id"].replace("g42-", "g42r-")
        r["model"] = M1
    publish(prod, P, post, args.rate, rng)
    rb = wait_for(
        lambda: [
            p
            for p in topic(env, "predictions")
            if str(p.get("id")).startswith("g42r-") and p.get("version") == after
        ],
        120,
        3,
    )
    pick = (rb or [{}])[0]
    q = env.run("--model", M1, "explain", str(pick.get("id")), "--json", timeout=180)
    try:
        doc = json.loads(q.stdout)
    except ValueError:
        doc = {}
    ok, det = logit_sum_ok(doc)
    record(
        "E3",
        "explain of a prediction served by the rollback release",
        q.returncode == 0 and doc.get("version") == after and ok,
        f"id {pick.get('id')} v{pick.get('version')}; explain exit {q.returncode} v{doc.get('version')} "
        f"{det}; {q.stderr.strip()[-160:]}",
    )
    # console after a trainer restart: still the truth
    w.stop("trainB")
    w.start("trainB", "train", {"DRIFTLINE_STATE_DIR": str(stB)})
    time.sleep(20)
    cur = g40.jget(base + "api/models/current")[1]
    s_show = _show(env, M1)
    record(
        "C10",
        "after a trainer restart the console and `models show` agree",
        isinstance(cur, dict) and cur.get("version") == s_show.get("version"),
        f"console v{cur.get('version') if isinstance(cur, dict) else cur}; show v{s_show.get('version')}",
    )
    aud = g40.jget(base + "api/audit")[1]
    ver = aud.get("verified") if isinstance(aud, dict) else None
    q = env.run("--model", M1, "audit", "verify", "--json", timeout=180)
    cli_ok = json.loads(q.stdout).get("ok") if q.stdout.strip().startswith("{") else None
    record(
        "C11",
        "console /api/audit verdict = `audit verify --model M --json` on its machine (state dir A); both ok",
        isinstance(ver, dict) and ver.get("ok") is True and cli_ok is True,
        f"console ok {ver.get('ok') if isinstance(ver, dict) else ver}; cli exit {q.returncode} ok {cli_ok}; "
        f"notes {[n[:90] for c in (ver or {}).get('checks', []) for n in c.get('notes', [])]}",
    )

    # the served-fairness view of a model after its trainers restart (no new labels)
    def gaps_of(model: str) -> dict[str, float]:
        out: dict[str, float] = {}
        for name in ("trainA", "trainB"):
            fams = o36.scrape(w.ports[name])
            for _n, lab, v in fams.get("driftline_fairness_gap", {"samples": []})["samples"]:
                if lab.get("model") == model:
                    out[lab.get("gap", "?")] = v
        return out

    before_gaps = fam_gaps  # F1's: every label of the stream learned, the trainers not yet restarted since
    w.stop("trainA")
    w.stop("trainB")
    w.start("trainA", "train")
    w.start("trainB", "train", {"DRIFTLINE_STATE_DIR": str(stB)})
    after_gaps = wait_for(lambda: gaps_of(M1), 45, 3) or {}
    record(
        "F4",
        "after the trainers restart, the served model's fairness gaps (over its last 1,000 labels) are still shown",
        bool(after_gaps) or not before_gaps,
        f"at F1 {before_gaps}; after (45 s; since F1 only the 360 labels of C6-E3 over 31 segments) {after_gaps}",
    )

    # ---------------------------------------------------------------- T: the audit topic's configuration
    from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource

    admin = AdminClient({"bootstrap.servers": bootstrap})
    res_ = ConfigResource(ConfigResource.Type.TOPIC, P + "audit")
    entries = [
        ConfigEntry("cleanup.policy", "compact", incremental_operation=AlterConfigOpType.SET),
        ConfigEntry("segment.ms", "500", incremental_operation=AlterConfigOpType.SET),
        ConfigEntry("min.cleanable.dirty.ratio", "0.001", incremental_operation=AlterConfigOpType.SET),
        ConfigEntry("max.compaction.lag.ms", "500", incremental_operation=AlterConfigOpType.SET),
    ]
    for f in admin.incremental_alter_configs(
        [res_.__class__(res_.restype, res_.name, incremental_configs=entries)]
    ).values():
        f.result(30)
    q = env.run("topics", "describe", "--json", timeout=120)
    desc = q.stdout
    d = env.run("doctor", "--json", timeout=180)
    q2 = env.run("audit", "verify", "--json", timeout=180)
    record(
        "T1",
        "the audit topic switched to compaction: `topics describe` / `doctor` / `audit verify` say so",
        ("compact" in desc and q.returncode != 0)
        or ("compact" in d.stdout and d.returncode != 0)
        or q2.returncode != 0,
        f"describe exit {q.returncode} mentions audit compact {'compact' in desc}; doctor exit {d.returncode}; "
        f"audit verify exit {q2.returncode}",
    )
    # make entries so segments roll; wait for the cleaner
    for _ in range(3):
        send(base, {"action": "set", "key": "guard.alpha", "value": "0.05"})
        time.sleep(2)
    time.sleep(45)
    q3 = env.run("audit", "verify", "--json", timeout=180)
    aud = g40.jget(base + "api/audit")[1]
    ver = aud.get("verified") if isinstance(aud, dict) else None
    n_topic = len(env.lines("--model", M1, "audit", "show", "--source", "topic", "--json"))
    record(
        "T2",
        "after the log cleaner compacted the audit topic: `audit verify` exit 1 naming the loss; console too",
        q3.returncode == 1 and isinstance(ver, dict) and ver.get("ok") is False,
        f"verify exit {q3.returncode} kinds {o36._kinds(q3.stdout)}; topic entries of {M1} now {n_topic}; "
        f"console ok {ver.get('ok') if isinstance(ver, dict) else ver}",
    )


if __name__ == "__main__":
    sys.exit(main())
