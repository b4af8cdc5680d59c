"""Session 37, helper outside37: issues 18 (console) and 14 (architecture) checked from outside.

Drives driftline only through its public contract (command line, topics, records, the console's pages and
``/api/``), with a stream generated here (River's Agrawal generator with an abrupt concept change, a categorical
``region`` feature used as ``model.segment_feature``, labels published late), malformed records and a forged
control command written with plain confluent-kafka, as a user's service would.

Runs against any stack: ``DRIFTLINE_KAFKA_BOOTSTRAP``, ``DRIFTLINE_REDIS_URL``, ``DRIFTLINE_SIGNING_KEY`` (the
workers' key) and ``DRIFTLINE_STATE_DIR`` from the environment. It starts its own pipeline (``driftline worker
--role all``) and consoles on a fresh topic prefix, checks, stops what it started (by pid) and prints a pass/fail
table. Needs Debian's chromium + chromium-driver for the DOM checks (skipped with a FAIL row when missing).

    python docs/experiments/outside37.py [--events 3000] [--port 18765] [--keep]
"""

# ruff: noqa: E501  (the table rows are long f-strings)
from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from confluent_kafka import Producer

ROOT = Path(__file__).resolve().parents[2]
PY = sys.executable
RESULTS: list[tuple[str, str, str]] = []  # (check, PASS/FAIL/INFO, detail)


def record(name: str, ok: bool | None, detail: str = "") -> None:
    verdict = "INFO" if ok is None else ("PASS" if ok else "FAIL")
    RESULTS.append((name, verdict, detail))
    print(f"[{verdict}] {name}: {detail}", flush=True)


def check(name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Run a check; an exception is a FAIL row with the exception, never the end of the run."""

    def wrap(fn: Callable[..., Any]) -> Callable[..., Any]:
        def run(*a: Any, **k: Any) -> Any:
            try:
                return fn(*a, **k)
            except Exception as exc:  # a check that crashes is a failed check
                record(name, False, f"{type(exc).__name__}: {str(exc)[:300]}")
                return None

        return run

    return wrap


# -- processes -------------------------------------------------------------------------------------------------
STARTED: list[subprocess.Popen[bytes]] = []


def env_for(prefix: str, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["DRIFTLINE_TOPIC_PREFIX"] = prefix
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env.update(extra)
    return env


def cli(
    prefix: str, *args: str, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PY, "-m", "driftline", *args],
        env=env or env_for(prefix),
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
    )


def cli_json(prefix: str, *args: str, env: dict[str, str] | None = None) -> Any:
    done = cli(prefix, *args, env=env)
    if done.returncode not in (0, 1):
        raise RuntimeError(f"driftline {' '.join(args)}: exit {done.returncode}: {done.stderr[-500:]}")
    out = done.stdout.strip()
    try:
        return json.loads(out)
    except ValueError:
        return [json.loads(line) for line in out.splitlines() if line.strip()]


def start(cmd: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        cmd, env=env, cwd=ROOT, stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True
    )
    STARTED.append(proc)
    return proc


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(what: str, fn: Callable[[], Any], timeout: float = 120, every: float = 1.0) -> Any:
    end = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < end:
        try:
            last = fn()
            if last:
                return last
        except Exception as exc:
            last = exc
        time.sleep(every)
    raise TimeoutError(f"{what} not within {timeout:.0f} s (last: {str(last)[:200]})")


# -- HTTP ------------------------------------------------------------------------------------------------------
def http(
    url: str,
    method: str = "GET",
    headers: dict[str, str] | None = None,
    body: bytes | None = None,
    timeout: float = 30,
) -> tuple[int, dict[str, str], bytes]:
    req = urllib.request.Request(url, method=method, headers=headers or {}, data=body)
    opener = urllib.request.build_opener(NoRedirect)
    try:
        with opener.open(req, timeout=timeout) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *a: Any, **k: Any) -> None:
        return None


def get_json(url: str, headers: dict[str, str] | None = None) -> Any:
    status, _, body = http(url, headers=headers)
    if status != 200:
        raise RuntimeError(f"GET {url}: {status} {body[:300]!r}")
    return json.loads(body)


# -- the stream ------------------------------------------------------------------------------------------------
REGIONS = ("north", "south", "east", "west", "île-de-france")


def stream(n: int, seed: int) -> Iterator[tuple[dict[str, Any], int]]:
    """Agrawal, function 0 then function 4 from the middle on (abrupt concept drift), with a categorical
    ``region`` (the segment feature) and a numeric feature whose distribution shifts at the drift."""
    from river.datasets import synth

    rng = random.Random(seed)
    first = synth.Agrawal(classification_function=0, seed=seed)
    second = synth.Agrawal(classification_function=4, seed=seed + 1)
    for x, y in first.take(n // 2):
        yield {**x, "region": REGIONS[x["zipcode"] % 5], "noise": rng.gauss(0, 1)}, int(y)
    for x, y in second.take(n - n // 2):
        yield {**x, "region": REGIONS[x["zipcode"] % 5], "noise": rng.gauss(5, 1)}, int(y)


def publish_stream(bootstrap: str, prefix: str, n: int, delay: int, run: str, rate: float) -> list[str]:
    """Features as JSON (keyed by entity), each label ``delay`` events later, as a user's service would."""
    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5})
    ids: list[str] = []
    pending: list[tuple[str, int]] = []
    t0 = time.monotonic()
    for i, (x, y) in enumerate(stream(n, seed=37)):
        eid = f"{run}-{i}"
        ids.append(eid)
        value = {"id": eid, "ts": int(time.time() * 1000), "key": f"u{i % 97}", "features": x}
        p.produce(prefix + "features", json.dumps(value).encode(), key=f"u{i % 97}".encode())
        pending.append((eid, y))
        if len(pending) > delay:
            lid, ly = pending.pop(0)
            p.produce(prefix + "labels", json.dumps({"id": lid, "label": ly}).encode(), key=lid.encode())
        p.poll(0)
        if rate:
            ahead = (i + 1) / rate - (time.monotonic() - t0)
            if ahead > 0:
                time.sleep(ahead)
    for lid, ly in pending:
        p.produce(prefix + "labels", json.dumps({"id": lid, "label": ly}).encode(), key=lid.encode())
    assert p.flush(30) == 0, "features/labels not all delivered"
    return ids


HOSTILE: dict[str, bytes] = {
    "script": b'{"id": "<script>window.__pwned=1</script>", "features": "<script>window.__pwned=1</script>"}',
    "img": b'"><img src=x onerror="window.__pwned=2">',
    "utf8": b'{"id": "bad\xff\xfe\xc3(", "features": {"x": 1}}',
    "notjson": b"this is not json {",
    # Just under the producer's 1,000,000-byte default (over serving.max_record_bytes would need a broker change):
    # not JSON, so dead-lettered; its dead letter is at the size limit too.
    "big": b'<img src=x onerror="window.__pwned=3">' + b"A" * 998_900,
}


def publish_hostile(bootstrap: str, prefix: str) -> dict[str, tuple[int, int]]:
    """Malformed records on ``features``; returns where each landed (partition, offset)."""
    p = Producer({"bootstrap.servers": bootstrap, "acks": "all"})
    where: dict[str, tuple[int, int]] = {}

    def done(name: str) -> Callable[[Any, Any], None]:
        def cb(err: Any, msg: Any) -> None:
            if err is None:
                where[name] = (msg.partition(), msg.offset())

        return cb

    for name, value in HOSTILE.items():
        p.produce(prefix + "features", value, key=name.encode(), on_delivery=done(name))
    assert p.flush(30) == 0
    return where


def publish_forged_control(bootstrap: str, prefix: str, model: str) -> str:
    """A pause command with a signature made with a key the trainer does not hold (on the model's murmur2
    partition, as the README says any writer of ``control`` must)."""
    import hashlib
    import hmac

    key = b"not-the-operator-key-" + os.urandom(16).hex().encode()
    cid = "forged-" + uuid.uuid4().hex
    body = {
        "model": model,
        "command": "pause_learning",
        "args": {},
        "ts": int(time.time() * 1000),
        "id": cid,
        "key_id": "k-" + hashlib.sha256(b"driftline-operator-key:" + key).hexdigest()[:12],
    }
    canon = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    body["signature"] = hmac.new(key, canon, hashlib.sha256).hexdigest()
    p = Producer({"bootstrap.servers": bootstrap, "partitioner": "murmur2_random"})
    p.produce(prefix + "control", json.dumps(body).encode(), key=model.encode())
    assert p.flush(30) == 0
    return cid


# -- console checks (issue 18) ---------------------------------------------------------------------------------
TOKEN = "o37-" + uuid.uuid4().hex  # 36 characters


def console_env(prefix: str, config: Path) -> dict[str, str]:
    return env_for(prefix, DRIFTLINE_CONFIG=str(config), DRIFTLINE_CONSOLE_TOKEN=TOKEN)


def start_console(
    prefix: str,
    config: Path,
    port: int,
    tmp: Path,
    host: str = "127.0.0.1",
    env: dict[str, str] | None = None,
) -> subprocess.Popen[bytes]:
    log = tmp / f"console-{port}.log"
    proc = start(
        [PY, "-m", "driftline", "console", "--host", host, "--port", str(port)],
        env or console_env(prefix, config),
        log,
    )
    probe = "127.0.0.1" if host in ("127.0.0.1", "0.0.0.0") else host
    url = f"http://{probe}:{port}/static/style.css"
    wait_for(
        f"console on {port}",
        lambda: proc.poll() is None and http(url, headers={"Authorization": f"Bearer {TOKEN}"})[0] == 200,
        60,
        0.5,
    )
    return proc


def sse_events(url: str, seconds: float) -> list[dict[str, Any]]:
    """The ``update`` events the console pushes on ``/api/events`` within ``seconds``."""
    events: list[dict[str, Any]] = []
    req = urllib.request.Request(url)
    end = time.monotonic() + seconds
    with (
        contextlib.suppress(TimeoutError, socket.timeout, OSError),
        urllib.request.urlopen(req, timeout=seconds) as resp,
    ):
        for raw in resp:
            line = raw.decode().strip()
            if line.startswith("data: "):
                events.append(json.loads(line[6:]))
            if time.monotonic() > end:
                break
    return events


def tail_json(prefix: str, topic: str, env: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """Every record of a topic as ``driftline tail TOPIC --from-beginning --json`` prints it (one per line)."""
    done = cli(prefix, "tail", topic, "--from-beginning", "--json", env=env)
    if done.returncode != 0:
        raise RuntimeError(f"driftline tail {topic}: exit {done.returncode}: {done.stderr[-300:]}")
    return [json.loads(line) for line in done.stdout.splitlines() if line.strip()]


def models_topic(prefix: str, env: dict[str, str] | None = None) -> list[dict[str, Any]]:
    rows = tail_json(prefix, "models", env)
    return [r["value"] for r in rows if isinstance(r.get("value"), dict)]


def post_action(base: str, body: dict[str, Any], headers: dict[str, str] | None = None) -> tuple[int, Any]:
    h = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json", **(headers or {})}
    status, _, raw = http(base + "api/actions", "POST", h, json.dumps(body).encode())
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw[:200]


def wait_answer(base: str, cid: str, timeout: float = 60) -> dict[str, Any]:
    return dict(
        wait_for(
            f"answer to {cid}",
            lambda: (a := get_json(base + f"api/actions/{cid}"))["answered"] and a,
            timeout,
        )
    )


def diff(a: Any, b: Any, path: str = "", volatile: tuple[str, ...] = ()) -> list[str]:
    """Field-by-field differences, skipping keys whose value moves with time (``age_s``, ``since`` ...)."""
    out: list[str] = []
    if path.rsplit(".", 1)[-1] in volatile:
        return out
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b), key=str):
            if k not in a or k not in b:
                out.append(f"{path}.{k}: only in {'api' if k not in a else 'cli'}")
            else:
                out += diff(a[k], b[k], f"{path}.{k}", volatile)
    elif isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            out.append(f"{path}: {len(a)} items (cli) vs {len(b)} (api)")
        for i, (x, y) in enumerate(zip(a, b, strict=False)):
            out += diff(x, y, f"{path}[{i}]", volatile)
    elif a != b:
        out.append(f"{path}: cli {str(a)[:60]!r} != api {str(b)[:60]!r}")
    return out


VOLATILE = ("age_s", "since", "oldest_pending_age_s", "updated_at", "generated_at", "lag", "total_lag")


def browser() -> Any:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    binary, driver_path = shutil.which("chromium"), shutil.which("chromedriver")
    if not (binary and driver_path):
        raise RuntimeError("chromium / chromedriver not installed")
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--window-size=1400,1000",
        "--disable-gpu",
    ):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    driver.set_page_load_timeout(60)
    return driver


def dom_wait(driver: Any, fn: Callable[[Any], Any], timeout: float = 60) -> Any:
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(
        driver, timeout, 0.5, (NoSuchElementException, StaleElementReferenceException)
    ).until(fn)


def console_checks(prefix: str, config: Path, port: int, tmp: Path, n: int, bootstrap: str, run: str) -> None:
    base = f"http://127.0.0.1:{port}/"

    @check("help")
    def _help() -> None:
        done = cli(prefix, "console", "--help")
        record(
            "help",
            done.returncode == 0 and "--host" in done.stdout and "--port" in done.stdout,
            f"exit {done.returncode}",
        )

    _help()

    @check("stack down: clear error naming the address")
    def _down() -> None:
        k, r = free_port(), free_port()
        env = env_for(
            prefix,
            DRIFTLINE_KAFKA_BOOTSTRAP=f"127.0.0.1:{k}",
            DRIFTLINE_REDIS_URL=f"redis://127.0.0.1:{r}/0",
            DRIFTLINE_CONSOLE_TOKEN=TOKEN,
        )
        env.pop("DRIFTLINE_CONFIG", None)
        dport = free_port()
        proc = start_console(prefix, config, dport, tmp, env=env)
        try:
            status, _, body = http(f"http://127.0.0.1:{dport}/api/models", timeout=60)
            st = get_json(f"http://127.0.0.1:{dport}/api/status")
            named = f"127.0.0.1:{k}" in body.decode(errors="replace")
            record(
                "stack down: clear error naming the address",
                status == 503 and named and st["stack"]["kafka"]["up"] is False,
                f"/api/models -> {status} {body[:140]!r}; /api/status kafka up={st['stack']['kafka']['up']}",
            )
        finally:
            stop(proc)

    _down()

    @check("empty prefix reads as empty")
    def _empty() -> None:
        eport = free_port()
        proc = start_console("o37empty" + run + ".", config, eport, tmp)
        try:
            u = f"http://127.0.0.1:{eport}/api/"
            got = {
                p: http(u + p, timeout=60)[0]
                for p in ("status", "overview", "models", "lineage", "quality", "deadletters", "audit")
            }
            record(
                "empty prefix reads as empty",
                all(v == 200 for v in got.values()) and get_json(u + "models") == [],
                str(got),
            )
        finally:
            stop(proc)

    _empty()

    # Pipeline traffic is already in; wait for the trainer to have learned every label.
    @check("pipeline learned the stream")
    def _learned() -> None:
        show = wait_for(
            "every label learned",
            lambda: (
                (s := get_json(base + "api/models/current")).get("trainer", {}).get("n_learned", 0) >= n and s
            ),
            300,
            2,
        )
        record(
            "pipeline learned the stream",
            True,
            f"v{show['version']}, n_learned {show['trainer']['n_learned']}",
        )

    _learned()

    @check("overview: served version = models show")
    def _overview() -> None:
        shown = cli_json(prefix, "models", "show", "--json")
        shown = shown[0] if isinstance(shown, list) else shown
        ov = get_json(base + "api/overview")
        per_scorer = ov["status"]["models"][0]["scorers"]["by_scorer"]
        ok = ov["served_version"] == shown["version"] == shown["trainer"]["served_version"] and all(
            v["served"] == shown["version"] for v in per_scorer.values()
        )
        record(
            "overview: served version = models show",
            ok,
            f"overview v{ov['served_version']}, per scorer {per_scorer}, models show v{shown['version']}",
        )
        roles = sorted(w["group"].rsplit("-", 1)[-1] for w in ov["status"]["workers"])
        record(
            "overview: roles and members (heartbeat)",
            roles == ["join", "score", "trainers"] or len(roles) >= 3,
            f"groups {roles}; members {[w['members'] for w in ov['status']['workers']]}",
        )
        rates = ov["rates"]
        record(
            "overview: throughput, lag, pending joins, dead-letter rate",
            all(t in rates for t in ("features", "predictions", "training", "deadletter"))
            and "pending_joins" in ov
            and all("lag" in w for w in ov["status"]["workers"]),
            f"rates {rates}, pending_joins {ov.get('pending_joins')}",
        )
        # The 'total' of a rate is an offset sum: transaction markers count as records (INFO, checked by hand).
        dl = len(get_json(base + "api/deadletters?limit=2000")["items"])
        record(
            "overview: deadletter 'total' counts records",
            None if rates["deadletter"]["total"] == dl else False,
            f"rates.deadletter.total {rates['deadletter']['total']} vs {dl} dead letters on the topic",
        )

    _overview()

    @check("live updates (SSE pushes)")
    def _sse() -> None:
        events = sse_events(base + "api/events", 7)
        record(
            "live updates (SSE pushes)",
            len(events) >= 2 and "overview" in events[-1],
            f"{len(events)} update events in 7 s",
        )

    _sse()

    @check("lineage = every release on models, with reason")
    def _lineage() -> None:
        topic = models_topic(prefix)
        lin = get_json(base + "api/lineage")
        got = {r["version"]: r for r in lin["releases"]}
        missing = [r["version"] for r in topic if r["version"] not in got]
        wrong = [
            r["version"]
            for r in topic
            if r["version"] in got
            and (got[r["version"]]["reason"], got[r["version"]]["parent"]) != (r["reason"], r["parent"])
        ]
        record(
            "lineage = every release on models, with reason",
            not missing and not wrong and len(got) == len(topic),
            f"{len(topic)} on topic, {len(got)} in lineage; missing {missing[:5]}, reason/parent differ {wrong[:5]}",
        )
        later = [r for r in lin["releases"] if r["version"] > 1]
        bad = [
            r["version"]
            for r in later
            if not (
                r.get("decision", {}).get("evidence")
                and r["decision"].get("checks")
                and r.get("signature") == "valid"
                and r.get("size_bytes")
                and r.get("promoted_by")
                and r.get("metrics")
            )
        ]
        record(
            "lineage: decision, evidence, checks, signature, size, who",
            not bad,
            f"{len(later) - len(bad)}/{len(later)} releases complete; incomplete {bad[:5]}",
        )
        cands = lin.get("candidates", [])
        outcomes = sorted({c.get("outcome") for c in cands})
        record(
            "lineage: rejected/held candidates shown",
            None if not cands else True,
            f"{len(cands)} candidates, outcomes {outcomes}",
        )

    _lineage()

    @check("quality: rolling metric, alarms, per-feature drift, segments")
    def _quality() -> None:
        q = get_json(base + "api/quality")
        record(
            "quality: rolling accuracy with releases marked",
            len(q["series"]) > 10 and len(q["releases"]) > 1,
            f"{len(q['series'])} points, {len(q['releases'])} releases, {len(q['alarms'])} alarms",
        )
        record(
            "quality: drift alarm after the concept change",
            any(a["i"] >= n // 2 for a in q["alarms"]),
            f"alarms at {[a['i'] for a in q['alarms']]} (change at {n // 2})",
        )
        feats = {f["feature"] for f in q["features"]}
        record(
            "quality: per-feature drift (the shifted feature)",
            "noise" in feats,
            f"features alarmed {sorted(feats)}",
        )
        segs = q.get("segments") or {}
        record(
            "quality: segment metrics for segment_feature",
            q.get("segment_feature") == "region" and set(segs) == set(REGIONS),
            f"segment_feature {q.get('segment_feature')}, segments {sorted(segs)}",
        )

    _quality()

    where = HOSTILE_AT
    dl_url = base + "api/deadletters?limit=2000"

    @check("dead letters: by reason and source, offsets")
    def _dead() -> None:
        t0 = time.monotonic()
        d = get_json(dl_url)
        took = time.monotonic() - t0
        items = d["items"]
        big = [i for i in items if i["key"] == "big"]
        record(
            "dead letters: a 1 MB payload is listed, preview bounded",
            bool(big) and len(json.dumps(d)) < 2_000_000,
            f"/api/deadletters {len(json.dumps(d)):,} bytes in {took:.2f} s; the 1 MB one: value_bytes {big[0]['value_bytes'] if big else None}, preview {len(big[0]['value_preview']) if big else None} characters",
        )
        found = {
            name: any(
                i["source_topic"] == prefix + "features"
                and (int(i["source_partition"]), int(i["source_offset"])) == at
                for i in items
            )
            for name, at in where.items()
        }
        record("dead letters: every malformed record, at its offset", all(found.values()), str(found))
        control = [i for i in items if i["source_topic"] == prefix + "control"]
        record(
            "dead letters: the forged control command",
            bool(control) and "signature" in control[0]["error"],
            control[0]["error"][:120] if control else "none",
        )
        by_src = get_json(base + "api/deadletters?source=control")
        by_reason = get_json(base + "api/deadletters?reason=" + urllib.request.quote("SchemaError"))
        record(
            "dead letters: filter by source and reason",
            by_src["matched"] == len(control)
            and all(i["source_topic"] == prefix + "control" for i in by_src["items"])
            and by_reason["matched"] >= 4
            and all(i["reason"] == "SchemaError" for i in by_reason["items"]),
            f"source=control {by_src['matched']}/{by_src['total']}, reason=SchemaError {by_reason['matched']}/{by_reason['total']}",
        )

    _dead()

    @check("forged control command not applied")
    def _forged() -> None:
        tr = get_json(base + "api/models/current")["trainer"]
        audit = get_json(base + "api/audit")
        refused = [e for e in audit["entries"] if FORGED_ID in json.dumps(e)]
        record(
            "forged control command not applied",
            tr.get("paused") is False,
            f"paused {tr.get('paused')}; audit entries naming it: {len(refused)}",
        )

    _forged()

    @check("DOM: payloads shown as text, nothing runs")
    def _dom() -> None:
        from selenium.webdriver.common.by import By

        d = browser()
        try:
            d.get(base + "deadletters")
            rows = dom_wait(
                d,
                lambda dr: (
                    len(dr.find_elements(By.CSS_SELECTOR, "#deadletters tr.deadletter")) >= 5
                    and dr.find_elements(By.CSS_SELECTOR, "#deadletters tr.deadletter")
                ),
            )
            texts = [r.find_element(By.CSS_SELECTOR, "pre.payload").text for r in rows]
            pwned = d.execute_script("return window.__pwned")
            markup = d.find_elements(By.CSS_SELECTOR, "pre.payload *, main img, main script")
            shown = {
                "script": any("<script>window.__pwned=1</script>" in t for t in texts),
                "img": any('"><img src=x onerror=' in t for t in texts),
                "1 MB": any(t.startswith('<img src=x onerror="window.__pwned=3">AAAA') for t in texts),
                "invalid UTF-8": any(t.startswith('{"id": "bad') for t in texts),
            }
            record(
                "DOM: payloads shown as text, nothing runs",
                pwned is None and not markup and all(shown.values()),
                f"__pwned={pwned}, elements inside payloads {len(markup)}, shown as text {shown}",
            )
            d.get(base)
            served = get_json(base + "api/overview")["served_version"]
            dom_wait(d, lambda dr: f"v{served}" in dr.find_element(By.TAG_NAME, "main").text)
            record("DOM: overview page shows the served version", True, f"v{served} on the page")
            d.get(base + "lineage")
            dom_wait(d, lambda dr: len(dr.find_element(By.TAG_NAME, "main").text) > 200)
            txt = d.find_element(By.TAG_NAME, "main").text
            record(
                "DOM: lineage page shows releases with reasons",
                "incremental" in txt and "initial" in txt,
                f"{len(txt)} characters of text",
            )
        finally:
            d.quit()

    _dom()

    @check("actions: refused without/with wrong token, CSRF")
    def _auth() -> None:
        body = json.dumps({"action": "pause"}).encode()
        cases = {
            "no token": http(base + "api/actions", "POST", {"Content-Type": "application/json"}, body)[0],
            "wrong token": http(
                base + "api/actions",
                "POST",
                {"Content-Type": "application/json", "Authorization": "Bearer " + "x" * 36},
                body,
            )[0],
            "token, Origin evil": post_action(base, {"action": "pause"}, {"Origin": "http://evil.example"})[
                0
            ],
            "token, Origin null": post_action(base, {"action": "pause"}, {"Origin": "null"})[0],
            "token, Sec-Fetch-Site cross-site": post_action(
                base, {"action": "pause"}, {"Sec-Fetch-Site": "cross-site"}
            )[0],
            "token, text/plain body": http(
                base + "api/actions",
                "POST",
                {"Content-Type": "text/plain", "Authorization": f"Bearer {TOKEN}"},
                body,
            )[0],
            "cookie instead of bearer": http(
                base + "api/actions",
                "POST",
                {"Content-Type": "application/json", "Cookie": f"driftline_console={TOKEN}"},
                body,
            )[0],
            "Host not loopback (rebinding)": http(base + "api/status", headers={"Host": "evil.example"})[0],
            "invalid setting (400, nothing sent)": post_action(
                base, {"action": "set", "key": "bogus.key", "value": "1"}
            )[0],
        }
        expect = {
            "no token": 401,
            "wrong token": 401,
            "cookie instead of bearer": 401,
            "token, text/plain body": 415,
            "invalid setting (400, nothing sent)": 400,
        }
        bad = {k: v for k, v in cases.items() if v != expect.get(k, 403)}
        record(
            "actions: refused without/with wrong token, CSRF",
            not bad,
            "; ".join(f"{k} {v}" for k, v in cases.items()),
        )
        tr = get_json(base + "api/models/current")["trainer"]
        record(
            "actions: nothing refused was applied", tr.get("paused") is False, f"paused {tr.get('paused')}"
        )

    _auth()

    @check("actions with token reach control and the audit log")
    def _act() -> None:
        results = []
        for body in (
            {"action": "pause"},
            {"action": "resume"},
            {"action": "set", "key": "guard.max_disagreement", "value": "0.02"},
        ):
            status, sent = post_action(base, body)
            cid = sent["sent"]["id"]
            ans = wait_answer(base, cid)
            results.append((body["action"], status, cid, ans["applied"], ans["outcome"]))
        ctl = tail_json(prefix, "control")
        on_topic = {r["value"].get("id") for r in ctl if isinstance(r.get("value"), dict)}
        audit = json.dumps(get_json(base + "api/audit")["entries"])
        chain = cli(prefix, "audit", "show", "--json").stdout
        ok = all(
            s == 200 and applied and cid in on_topic and cid in audit and cid in chain
            for _, s, cid, applied, _ in results
        )
        record(
            "actions with token reach control and the audit log",
            ok,
            "; ".join(
                f"{a}: {s} {o} on-topic={c in on_topic} audit={c in chain}" for a, s, c, _, o in results
            ),
        )
        log = (
            Path(os.environ.get("DRIFTLINE_STATE_DIR", str(Path.home() / ".driftline")))
            / "console"
            / f"{prefix}default.actions.jsonl"
        )
        record(
            "actions: console's own note of who asked",
            log.exists() and all(c in log.read_text() for _, _, c, _, _ in results),
            str(log),
        )

    _act()

    @check("mirror: /api/status = status --json")
    def _mirror() -> None:
        pairs = [
            ("/api/status = status --json", "status", ("status", "--json")),
            ("/api/models = models list --json", "models", ("models", "list", "--json")),
            ("/api/models/current = models show --json", "models/current", ("models", "show", "--json")),
            ("/api/models/2 = models show 2 --json", "models/2", ("models", "show", "2", "--json")),
        ]
        for name, path, args in pairs:
            c = cli_json(prefix, *args)
            a = get_json(base + "api/" + path)
            if path.startswith("models/") and isinstance(c, list) and len(c) == 1:
                c = c[0]
            if path == "models" and isinstance(c, dict):
                c = [c]  # one release: one line
            d = diff(c, a, volatile=VOLATILE)
            record("mirror: " + name, not d, "identical" if not d else "; ".join(d[:6]))

    _mirror()


def held_candidate_checks(prefix: str, port: int, bootstrap: str, run: str, n: int) -> None:
    """With guard.max_disagreement lowered live (an action above), a second concept change makes the guard hold a
    candidate; the console shows it and promotes it through the same path as `driftline models promote held`."""
    base = f"http://127.0.0.1:{port}/"

    @check("held candidate shown and promoted from the console")
    def _held() -> None:
        publish_stream(bootstrap, prefix, n, 50, run + "b", 0)
        try:
            wait_for("a held candidate", lambda: get_json(base + "api/overview")["held_candidate"], 240, 3)
        except TimeoutError:
            cands = get_json(base + "api/lineage")["candidates"]
            record(
                "held candidate shown and promoted from the console",
                None,
                f"no hold happened in 240 s (candidates {sorted({c['outcome'] for c in cands})}); not checked",
            )
            return
        lin = get_json(base + "api/lineage")
        held = [c for c in lin["candidates"] if c.get("outcome") == "hold"]
        before = get_json(base + "api/models/current")["version"]
        _, sent = post_action(base, {"action": "promote", "target": "held"})
        ans = wait_answer(base, sent["sent"]["id"])
        after = wait_for(
            "new version", lambda: (v := get_json(base + "api/models/current")["version"]) > before and v, 60
        )
        lin = get_json(base + "api/lineage")
        rel = next(r for r in lin["releases"] if r["version"] == after)
        record(
            "held candidate shown and promoted from the console",
            bool(held) and ans["applied"] and rel["reason"] in ("manual", "incremental", "challenger"),
            f"held in lineage {len(held)}; promote -> {ans['outcome']}; v{before} -> v{after} ({rel['reason']}, promoted_by {rel.get('promoted_by')})",
        )

    _held()


def non_loopback_ip() -> str:
    """This machine's address on its default route (no packet is sent), else 127.0.0.1."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.1", 9))
            ip = str(s.getsockname()[0])
        except OSError:
            return "127.0.0.1"
    return ip if not ip.startswith("127.") else "127.0.0.1"


def public_bind_checks(prefix: str, config: Path, tmp: Path) -> None:
    for host in ("0.0.0.0", non_loopback_ip()):
        if host != "127.0.0.1":
            public_bind_check(prefix, config, tmp, host)


def public_bind_check(prefix: str, config: Path, tmp: Path, host: str) -> None:
    name = f"--host {host}: token needed for every read"

    @check(name)
    def _public() -> None:
        port = free_port()
        proc = start_console(prefix, config, port, tmp, host=host)
        try:
            ip = non_loopback_ip()
            u = f"http://{ip}:{port}/"
            anon = {
                p: http(u + p)[0]
                for p in (
                    "",
                    "lineage",
                    "deadletters",
                    "api/status",
                    "api/overview",
                    "api/events",
                    "static/app.js",
                )
            }
            bearer = {
                p: http(u + p, headers={"Authorization": f"Bearer {TOKEN}"})[0] for p in ("", "api/status")
            }
            s, h, _ = http(u + f"?token={TOKEN}")
            cookie = h.get("Set-Cookie", "")
            jar = cookie.split(";", 1)[0]
            with_cookie = http(u + "api/status", headers={"Cookie": jar})[0]
            post_cookie = http(
                u + "api/actions",
                "POST",
                {"Cookie": jar, "Content-Type": "application/json"},
                b'{"action":"pause"}',
            )[0]
            wrong = http(u + "?token=" + "y" * 36)[0]
            ok = (
                all(v == 401 for k, v in anon.items() if k != "static/app.js")
                and all(v == 200 for v in bearer.values())
                and s == 303
                and "HttpOnly" in cookie
                and "SameSite=Strict" in cookie
                and with_cookie == 200
                and post_cookie == 401
                and wrong == 401
            )
            record(
                name,
                ok,
                f"via {ip}: anonymous {anon}; bearer {bearer}; ?token= {s} cookie {cookie.split(';')[0][:20]}..; cookie read {with_cookie}; cookie POST {post_cookie}; wrong ?token {wrong}",
            )
        finally:
            stop(proc)

    _public()


# -- architecture checks (issue 14) ----------------------------------------------------------------------------
MINE = '''
"""A user's own learner and detector, written from the README's "Extending" section only."""
from river import linear_model, preprocessing


class O37LR:
    """Logistic regression on scaled numeric features; refuses (raises) on an event with a 'boom' feature."""

    def __init__(self):
        self.model = preprocessing.StandardScaler() | linear_model.LogisticRegression()

    @staticmethod
    def _x(x):
        if "boom" in x:
            raise ValueError("O37LR cannot answer an event with a 'boom' feature")
        return {k: v for k, v in x.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}

    def learn_one(self, x, y):
        self.model.learn_one(self._x(x), y)

    def predict_one(self, x):
        return self.model.predict_one(self._x(x))

    def predict_proba_one(self, x):
        return self.model.predict_proba_one(self._x(x))


class NoProba:
    """A classifier that forgot predict_proba_one."""

    def __init__(self):
        self.seen = 0

    def learn_one(self, x, y):
        self.seen += 1

    def predict_one(self, x):
        return 0


class EveryN:
    def __init__(self, n=150):
        self.n, self.seen, self.drift_detected = n, 0, False

    def update(self, value):
        self.seen += 1
        self.drift_detected = self.seen % self.n == 0


def build(params, task, seed):
    return O37LR()


def build_noproba(params, task, seed):
    return NoProba()
'''

LAUNCH = """
import sys

import mine37
from learners.detectors import register_detector
from learners.pickle_allow import ALLOWED
from learners.specs import KINDS
from streams.cli import main

register_detector("o37_every", mine37.EveryN)
KINDS["o37_lr"] = (mine37.build, ("classification",))
KINDS["o37_noproba"] = (mine37.build_noproba, ("classification",))
ALLOWED[("mine37", "O37LR")] = "plain attributes; no __reduce__ or __setstate__ of its own"
ALLOWED[("mine37", "NoProba")] = "one int attribute"
sys.exit(main(sys.argv[1:]))
"""


def architecture_checks(tmp: Path, bootstrap: str, run: str) -> None:
    @check("lint-imports: layer contracts exist and hold")
    def _layers() -> None:
        text = (ROOT / ".importlinter").read_text()
        names = [line.split("=", 1)[1].strip() for line in text.splitlines() if line.startswith("name =")]
        lint = shutil.which("lint-imports") or str(Path(PY).parent / "lint-imports")
        done = subprocess.run([lint], cwd=ROOT, capture_output=True, text=True, timeout=300)
        tail = [line for line in done.stdout.splitlines() if "Contracts:" in line]
        record(
            "lint-imports: layer contracts exist and hold",
            done.returncode == 0 and any("layer" in n.lower() for n in names) and len(names) >= 3,
            f"{len(names)} contracts ({'; '.join(names)[:200]}...); {tail[-1] if tail else done.stdout[-200:]}",
        )

    _layers()

    ext = tmp / "ext"
    ext.mkdir(exist_ok=True)
    (ext / "mine37.py").write_text(MINE)
    (ext / "launch37.py").write_text(LAUNCH)
    prefix = f"o37e{run}."
    config = ext / "config.yaml"
    config.write_text(
        "model:\n  learner: {name: o37_lr}\n"
        "drift:\n  error_detector: o37_every\n  error_detector_params: {n: 150}\n  sentinel: false\n"
    )
    env = env_for(prefix, DRIFTLINE_CONFIG=str(config), DRIFTLINE_METRICS_PORT=str(free_port()))
    env["PYTHONPATH"] = os.pathsep.join([str(ext), str(ROOT)])
    launcher = [PY, str(ext / "launch37.py")]

    @check("extension: wrong names refused by name")
    def _names() -> None:
        plain = subprocess.run(
            [PY, "-m", "driftline", "config", "validate", str(config)],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            cwd=ROOT,
        )
        bad_det = ext / "bad_detector.yaml"
        bad_det.write_text("drift:\n  error_detector: o37_nope\n")
        det = subprocess.run(
            [*launcher, "config", "validate", str(bad_det)],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            cwd=ROOT,
        )
        bad_param = ext / "bad_param.yaml"
        bad_param.write_text(
            "model:\n  learner: {name: o37_lr}\ndrift:\n  error_detector: o37_every\n  error_detector_params: {m: 3}\n"
        )
        par = subprocess.run(
            [*launcher, "config", "validate", str(bad_param)],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            cwd=ROOT,
        )
        mine = subprocess.run(
            [*launcher, "config", "validate", str(config)],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            cwd=ROOT,
        )

        def out(d: subprocess.CompletedProcess[str]) -> str:
            text = (d.stdout + d.stderr).strip()
            return text.splitlines()[-1][:150] if text else ""

        ok = (
            plain.returncode == 2
            and "o37_lr" in plain.stderr + plain.stdout
            and det.returncode == 2
            and "o37_nope" in det.stderr + det.stdout
            and par.returncode == 2
            and mine.returncode == 0
        )
        record(
            "extension: wrong names refused by name",
            ok,
            f"plain driftline: {plain.returncode} {out(plain)!r}; unknown detector: {det.returncode} {out(det)!r}; unknown detector param: {par.returncode} {out(par)!r}; launcher: {mine.returncode}",
        )

    _names()

    @check("extension: learner without predict_proba_one")
    def _noproba() -> None:
        cfg = ext / "noproba.yaml"
        cfg.write_text("model:\n  learner: {name: o37_noproba}\n")
        v = subprocess.run(
            [*launcher, "config", "validate", str(cfg)],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            cwd=ROOT,
        )
        r = subprocess.run(
            [*launcher, "--config", str(cfg), "replay", "--stream", "sea-stationary", "--n", "600", "--json"],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            cwd=ROOT,
        )
        last = (r.stderr.strip().splitlines() or [""])[-1][:200]
        traceback = "Traceback" in r.stderr
        record(
            "extension: learner without predict_proba_one",
            (v.returncode == 2 or r.returncode == 2) and not traceback,
            f"config validate exit {v.returncode} {(v.stdout + v.stderr).strip()[-150:]!r}; replay exit {r.returncode}, traceback {traceback}: {last!r}",
        )

    _noproba()

    @check("extension: own learner + detector through the pipeline")
    def _pipeline() -> None:
        subprocess.run(
            [PY, "-m", "driftline", "topics", "create"], env=env, capture_output=True, timeout=120, cwd=ROOT
        )
        worker = start([*launcher, "worker", "--role", "all"], env, tmp / "ext-worker.log")
        try:
            wait_for("v1 of o37_lr", lambda: models_topic(prefix), 120, 2)
            p = Producer({"bootstrap.servers": bootstrap, "acks": "all"})
            m = 600
            boom_ids = []
            for i, (x, y) in enumerate(stream(m, seed=5)):
                eid = f"{run}-e{i}"
                feats = dict(x)
                if i % 200 == 150:
                    feats["boom"] = 1
                    boom_ids.append(eid)
                p.produce(
                    prefix + "features", json.dumps({"id": eid, "features": feats}).encode(), key=eid.encode()
                )
                p.produce(prefix + "labels", json.dumps({"id": eid, "label": y}).encode(), key=eid.encode())
                if i % 50 == 49:
                    p.flush(10)
                    time.sleep(0.3)
            p.flush(30)
            time.sleep(2)
            rels = wait_for("releases of o37_lr", lambda: len(r := models_topic(prefix)) >= 3 and r, 180, 3)
            preds = wait_for(
                "predictions",
                lambda: len(pp := tail_json(prefix, "predictions", env)) >= m - len(boom_ids) and pp,
                180,
                3,
            )
            versions = sorted({r["value"]["version"] for r in preds})
            answered = sum(1 for r in preds if r["value"].get("prediction") is not None)
            record(
                "extension: own learner + detector through the pipeline",
                len(rels) >= 3 and max(versions) >= 2 and answered > m // 2 and worker.poll() is None,
                f"{len(rels)} releases, predictions {len(preds)} ({answered} answered) by versions {versions[:3]}..{versions[-1]}; worker alive {worker.poll() is None}",
            )
            drift = tail_json(prefix, "drift", env)
            dets = sorted({r["value"]["detector"] for r in drift if isinstance(r.get("value"), dict)})
            record(
                "extension: own detector's alarms on drift",
                "o37_every" in dets,
                f"detectors on drift: {dets}",
            )
            dead = wait_for(
                "boom dead letters",
                lambda: [r for r in tail_json(prefix, "deadletter", env) if isinstance(r.get("value"), dict)],
                60,
                3,
            )
            errs = [r["value"]["error"] for r in dead]
            boom_pred = [r for r in preds if r["value"]["id"] in boom_ids]
            record(
                "extension: a learner that raises in predict loses nothing, says why",
                worker.poll() is None
                and (
                    len([e for e in errs if "boom" in e]) >= len(boom_ids) or len(boom_pred) == len(boom_ids)
                ),
                f"{len(boom_ids)} boom events: {len(boom_pred)} predicted ({[b['value'].get('prediction') for b in boom_pred]}), dead letters {errs[:2]}",
            )
        finally:
            stop(worker)
            cli(prefix, "cleanup", "--prefix", prefix, env=env, timeout=180)

    _pipeline()


def print_table() -> int:
    width = max(len(r[0]) for r in RESULTS)
    print("\n| check | result | detail |\n|---|---|---|")
    for name, verdict, detail in RESULTS:
        print(f"| {name:<{width}} | {verdict} | {detail.replace('|', '/')} |")
    fails = sum(1 for r in RESULTS if r[1] == "FAIL")
    print(
        f"\n{len(RESULTS)} checks: {sum(1 for r in RESULTS if r[1] == 'PASS')} pass, {fails} fail, {sum(1 for r in RESULTS if r[1] == 'INFO')} info"
    )
    return 1 if fails else 0


HOSTILE_AT: dict[str, tuple[int, int]] = {}
FORGED_ID = ""


def main(argv: list[str] | None = None) -> int:
    global FORGED_ID
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--events", type=int, default=3000)
    ap.add_argument("--port", type=int, default=18765)
    ap.add_argument("--keep", action="store_true", help="keep the prefix's topics (no cleanup)")
    ap.add_argument("--only", choices=("console", "architecture"), default=None)
    args = ap.parse_args(argv)
    if not os.environ.get("DRIFTLINE_SIGNING_KEY") and not os.environ.get("DRIFTLINE_SIGNING_KEY_FILE"):
        print("set DRIFTLINE_SIGNING_KEY (32+ bytes) as the workers need it", file=sys.stderr)
        return 2
    bootstrap = os.environ.get("DRIFTLINE_KAFKA_BOOTSTRAP", "127.0.0.1:9092")
    run = uuid.uuid4().hex[:6]
    tmp = Path(tempfile.mkdtemp(prefix="outside37-"))
    print(
        f"bootstrap {bootstrap}, redis {os.environ.get('DRIFTLINE_REDIS_URL', 'default')}, run {run}, logs {tmp}"
    )
    try:
        if args.only in (None, "console"):
            prefix = f"o37c{run}."
            config = tmp / "config.yaml"
            config.write_text(
                textwrap.dedent("""\
                model:
                  learner: {name: logistic_regression, params: {}}
                  segment_feature: region
                """)
            )
            env = env_for(prefix, DRIFTLINE_CONFIG=str(config), DRIFTLINE_METRICS_PORT=str(free_port()))
            cli(prefix, "topics", "create", env=env)
            worker = start([PY, "-m", "driftline", "worker", "--role", "all"], env, tmp / "worker.log")
            console = start_console(prefix, config, args.port, tmp)
            wait_for("v1", lambda: models_topic(prefix), 120, 2)
            publish_stream(bootstrap, prefix, args.events, 100, run, 400)
            HOSTILE_AT.update(publish_hostile(bootstrap, prefix))
            FORGED_ID = publish_forged_control(bootstrap, prefix, "default")
            console_checks(prefix, config, args.port, tmp, args.events, bootstrap, run)
            public_bind_checks(prefix, config, tmp)
            held_candidate_checks(prefix, args.port, bootstrap, run, args.events)
            stop(console)
            stop(worker)
            if not args.keep:
                cli(prefix, "cleanup", "--prefix", prefix, env=env, timeout=180)
        if args.only in (None, "architecture"):
            architecture_checks(tmp, bootstrap, run)
    finally:
        for proc in STARTED:
            stop(proc)
    return print_table()


if __name__ == "__main__":
    sys.exit(main())
