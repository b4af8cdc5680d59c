"""Issue 14's outside-visible promises, driven again from outside (session 41, helper arch41).

Four parts, each a table of checks with PASS/FAIL (docs/experiments/arch41.md has the last run):

- ``plugins``: a contributor adds two learners the README's "Extending" way, from a module of their own and a
  launcher (``driftline`` imports nothing of theirs): a River learner that is not one of driftline's kinds
  (``forest.AMFClassifier``) and a scikit-learn one (``naive_bayes.GaussianNB`` through River's compat wrapper).
  First without any ``ALLOWED`` entry (what does the loader check say?), then adding, one at a time, each global the
  error names, as a contributor would; then ``config validate`` and ``replay`` through the launcher.
- ``detectors``: every River drift detector by name (River's class names, as the README says they work) with
  parameters, through ``config validate`` and ``replay``; each twice, with a sensitive and a dull parameter, to see
  the parameters reach the detector (the alarm counts differ); then wrong names, parameters and values.
- ``layouts``: the same events through ``worker --role all`` and through separate ``score``, ``join`` and ``train``
  processes (fresh topic prefixes on one broker), compared record by record: predictions, training examples and
  releases.
- ``dead``: ``vulture --min-confidence 80`` over the packages, and ``lint-imports``.

Run (a stack of one's own; nothing here reads DRIFTLINE_KAFKA_BOOTSTRAP, the layouts part goes to
DRIFTLINE_TEST_KAFKA / DRIFTLINE_TEST_REDIS as the tests do)::

    DRIFTLINE_TEST_KAFKA=127.0.0.1:15092 DRIFTLINE_TEST_REDIS=redis://127.0.0.1:15379/15 PYTHONPATH=$PWD \\
        nice -n 5 /work/main/.venv/bin/python docs/experiments/arch41.py [--only plugins,detectors,layouts,dead]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
PY = sys.executable

ROWS: list[tuple[str, str, str, str]] = []


def record(part: str, check: str, ok: bool | None, detail: str) -> None:
    verdict = "PASS" if ok else ("FAIL" if ok is False else "INFO")
    ROWS.append((part, check, verdict, detail))
    print(f"[{verdict}] {part}: {check}: {detail}", flush=True)


def plain_env(*paths: Path) -> dict[str, str]:
    """The caller's environment without any DRIFTLINE_ variable, with ``paths`` and the tree on PYTHONPATH."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DRIFTLINE")}
    env["PYTHONPATH"] = os.pathsep.join([*map(str, paths), str(ROOT)])
    return env


def run(cmd: list[str], env: dict[str, str], timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout, check=False)


def last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1][:300] if lines else ""


# --------------------------------------------------------------------------------------------------- plugins

MODULE = '''
from river import compat, forest, preprocessing
from sklearn.naive_bayes import GaussianNB


def build_amf(params, task, seed):
    """River's Aggregated Mondrian Forest: not one of driftline's learner kinds."""
    return forest.AMFClassifier(n_estimators=params.get("n_estimators", 5), seed=seed)


def build_gnb(params, task, seed):
    """scikit-learn's GaussianNB (partial_fit, predict_proba) through River's compat wrapper."""
    classes = params.get("classes", [False, True])
    return preprocessing.StandardScaler() | compat.convert_sklearn_to_river(GaussianNB(), classes=classes)
'''

LAUNCHER = """
import json, os, sys

import mine
from learners.pickle_allow import ALLOWED
from learners.specs import KINDS

KINDS["my_amf"] = (mine.build_amf, ("classification",))
KINDS["my_gnb"] = (mine.build_gnb, ("classification",))
for module, name in json.loads(os.environ.get("ARCH41_ALLOWED", "[]")):
    ALLOWED[(module, name)] = "arch41: admitted after reading its __reduce__/__setstate__"

from streams.cli import main

sys.exit(main(sys.argv[1:]))
"""

REFUSED = re.compile(r"([\w.]+)\.(\w+) is not allowed")


def plugins(work: Path) -> None:
    (work / "mine.py").write_text(MODULE)
    (work / "launch.py").write_text(LAUNCHER)
    for kind, what in (("my_amf", "River AMFClassifier"), ("my_gnb", "sklearn GaussianNB")):
        config = work / f"{kind}.yaml"
        config.write_text(f"model:\n  learner: {{name: {kind}}}\n")
        env = plain_env(work)
        launch = [PY, str(work / "launch.py"), "--config", str(config)]
        # 1. Without the launcher: the name is unknown, refused naming the setting.
        plain = run([PY, "-m", "driftline", "config", "validate", str(config)], env, 120)
        record(
            "plugins",
            f"{what}: plain `config validate` refuses the unknown name",
            plain.returncode == 2
            and f"model.learner: unknown learner '{kind}'" in plain.stderr + plain.stdout,
            f"rc {plain.returncode}: {last_line(plain.stderr + plain.stdout)}",
        )
        # 2. The contributor's loop: validate, read the refused global, admit it, again.
        allowed: list[list[str]] = []
        messages = []
        for _ in range(25):
            env["ARCH41_ALLOWED"] = json.dumps(allowed)
            done = run([*launch, "config", "validate", str(config)], env, 300)
            if done.returncode == 0:
                break
            text = done.stderr + done.stdout
            messages.append(last_line(text))
            found = REFUSED.search(text)
            if not found or [found[1], found[2]] in allowed:
                break
            allowed.append([found[1], found[2]])
        first = messages[0] if messages else "(valid at once)"
        record(
            "plugins",
            f"{what}: the loader check names each global it refuses, setting first",
            done.returncode == 0 and all("invalid: model.learner:" in m for m in messages),
            f"{len(allowed)} ALLOWED entries added one at a time ({', '.join('.'.join(a) for a in allowed)}); "
            f"rc {done.returncode} at the end; first message: {first}",
        )
        # 3. Replay through the launcher (the same learners, monitors and guard as the workers).
        rep = run(
            [*launch, "replay", "--stream", "sea-abrupt", "--n", "3000", "--json", "--no-plain"], env, 600
        )
        ok = rep.returncode == 0
        out = json.loads(rep.stdout) if ok else {}
        record(
            "plugins",
            f"{what}: `replay` through the launcher learns",
            ok and out.get("learner") == kind and out.get("accuracy", 0) > 0.7,
            f"rc {rep.returncode}, learner {out.get('learner')}, accuracy {out.get('accuracy')}, "
            f"promotions {len(out.get('promotions') or [])}"
            if ok
            else last_line(rep.stderr),
        )


# ------------------------------------------------------------------------------------------------- detectors

# (setting, River class name as a user would write it, sensitive params, dull params)
DETECTORS = [
    ("error_detector", "ADWIN", {"delta": 0.3}, {"delta": 1e-9}),
    ("error_detector", "PageHinkley", {"threshold": 5, "min_instances": 30}, {"threshold": 5000}),
    (
        "error_detector",
        "KSWIN",
        {"alpha": 0.05, "window_size": 100, "stat_size": 30, "seed": 1},
        {"alpha": 1e-9, "window_size": 100, "stat_size": 30, "seed": 1},
    ),
    (
        "error_detector",
        "DDM",
        {"warm_start": 30, "drift_threshold": 1.0},
        {"warm_start": 30, "drift_threshold": 50},
    ),
    (
        "error_detector",
        "EDDM",
        {"warm_start": 30, "alpha": 0.99, "beta": 0.98},
        {"warm_start": 30, "alpha": 0.01, "beta": 0.005},
    ),
    ("error_detector", "HDDM_A", {"drift_confidence": 0.3}, {"drift_confidence": 1e-12}),
    ("error_detector", "HDDM_W", {"drift_confidence": 0.3, "lambda_val": 0.2}, {"drift_confidence": 1e-12}),
    ("loss_detector", "ADWIN", {"delta": 0.3}, {"delta": 1e-9}),
    (
        "feature_detector",
        "KSWIN",
        {"alpha": 0.05, "window_size": 100, "stat_size": 30, "seed": 1},
        {"alpha": 1e-9, "window_size": 100, "stat_size": 30, "seed": 1},
    ),
]

# The other two detectors off, so the alarms counted are the named detector's (and the sentinel off).
QUIET = {
    "error_detector": "  ph_loss: false\n  feature_drift: false\n  sentinel: false\n",
    "loss_detector": "  error_detector: page_hinkley\n  error_detector_params: {threshold: 1.0e+9}\n"
    "  feature_drift: false\n  sentinel: false\n",
    "feature_detector": "  error_detector: page_hinkley\n  error_detector_params: {threshold: 1.0e+9}\n"
    "  ph_loss: false\n  sentinel: false\n",
}

BAD = [
    (
        "a number written as text (YAML 1.1 reads 1.0e9 so)",
        "  error_detector: page_hinkley\n  error_detector_params: {threshold: 1.0e9}\n",
        "drift.error_detector_params: page_hinkley threshold must be a number",
    ),
    ("unknown name", "  error_detector: adwinn\n", "drift.error_detector: unknown detector 'adwinn'"),
    (
        "unknown parameter",
        "  error_detector: ADWIN\n  error_detector_params: {deltaa: 0.1}\n",
        "drift.error_detector_params: adwin has no parameter 'deltaa'",
    ),
    (
        "value out of range",
        "  error_detector: ADWIN\n  error_detector_params: {delta: 2}\n",
        "drift.error_detector_params: adwin delta must be between 0 and 1",
    ),
    (
        "wrong type",
        "  error_detector: KSWIN\n  error_detector_params: {window_size: many}\n",
        "drift.error_detector_params",
    ),
    ("a 0/1 detector on the loss", "  loss_detector: DDM\n", "drift.loss_detector"),
    ("a 0/1 detector on the features", "  feature_detector: HDDM_W\n", "drift.feature_detector"),
    (
        "parameters not a mapping",
        "  error_detector: ADWIN\n  error_detector_params: [0.1]\n",
        "drift.error_detector_params",
    ),
]


def _yaml_value(v: Any) -> str:
    text = json.dumps(v)
    # PyYAML (YAML 1.1) reads 1e-09 as a string: a float needs its dot (1.0e-09)
    return text.replace("e", ".0e") if isinstance(v, float) and "e" in text and "." not in text else text


def _yaml_map(params: dict[str, Any]) -> str:
    return "{" + ", ".join(f"{k}: {_yaml_value(v)}" for k, v in params.items()) + "}"


def _shifted(path: Path) -> None:
    """4,000 rows: feature x moves from N(0, 1) to N(3, 1) half way, z does not; the label is z > 0."""
    rng = random.Random(3)
    rows = ["x,z,y"]
    for i in range(4000):
        x, z = rng.gauss(0 if i < 2000 else 3, 1), rng.gauss(0, 1)
        rows.append(f"{x:.4f},{z:.4f},{int(z > 0)}")
    path.write_text("\n".join(rows) + "\n")


def detectors(work: Path, settings: list[str]) -> None:
    env = plain_env()
    shifted = work / "shifted.csv"
    _shifted(shifted)
    for setting, name, sensitive, dull in DETECTORS:
        if setting not in settings:
            continue
        counts = []
        for params in (sensitive, dull):
            config = work / f"det-{setting}-{name}-{len(counts)}.yaml"
            text = f"drift:\n{QUIET[setting]}  {setting}: {name}\n  {setting}_params: {_yaml_map(params)}\n"
            config.write_text(text)
            val = run(
                [PY, "-m", "driftline", "--config", str(config), "config", "validate", str(config)], env, 120
            )
            if val.returncode != 0:
                counts.append(f"validate rc {val.returncode}: {last_line(val.stderr)}")
                continue
            # agrawal-abrupt: a function switch half way (a large error change); 4,000 events
            # a function switch half way for the error and loss (agrawal-abrupt), a feature shift for the features
            source = (
                ["--file", str(shifted), "--label-col", "y"]
                if setting == "feature_detector"
                else ["--stream", "agrawal-abrupt", "--n", "4000"]
            )
            rep = run(
                [
                    PY,
                    "-m",
                    "driftline",
                    "--config",
                    str(config),
                    "replay",
                    *source,
                    "--json",
                    "--no-plain",
                    "--learner",
                    "logistic_regression",
                ],
                env,
                600,
            )
            if rep.returncode != 0:
                counts.append(f"replay rc {rep.returncode}: {last_line(rep.stderr)}")
                continue
            summary = json.loads(rep.stdout)
            counts.append(len(summary["feature_alarms" if setting == "feature_detector" else "alarms"]))
        ok = all(isinstance(c, int) for c in counts) and counts[0] != counts[1]
        record(
            "detectors",
            f"drift.{setting}: {name} with parameters",
            ok,
            f"alarms over 4,000 events: sensitive {sensitive} -> {counts[0]}, dull {dull} -> {counts[1]}",
        )
    for what, body, expected in BAD:
        config = work / f"bad-{what.replace(' ', '_').replace('/', '')}.yaml"
        config.write_text(f"drift:\n{body}")
        val = run([PY, "-m", "driftline", "config", "validate", str(config)], env, 120)
        text = val.stderr + val.stdout
        record(
            "detectors",
            f"refused: {what}",
            val.returncode == 2 and expected in text and "Traceback" not in text,
            f"rc {val.returncode}: {last_line(text)}",
        )


# --------------------------------------------------------------------------------------------------- layouts


def _stream(path: Path, ids: str, n: int, seed: int) -> None:
    """SEA-like rows: y = x1 + x2 > 8 (then > 10 from the middle on), 10 % label noise; the id column first."""
    rng = random.Random(seed)
    lines = ["id,x1,x2,x3,y"]
    for i in range(n):
        x1, x2, x3 = (round(rng.uniform(0, 10), 4) for _ in range(3))
        y = (x1 + x2 > (8 if i < n // 2 else 10)) != (rng.random() < 0.1)
        lines.append(f"{ids}{i},{x1},{x2},{x3},{int(y)}")
    path.write_text("\n".join(lines) + "\n")


def _layout(
    roles: tuple[str, ...], work: Path, first: Path, second: Path, n1: int, n2: int, partitions: int
) -> dict[str, Any]:
    from tests.pipeline_helpers import Pipeline

    prefix = f"a41-{'-'.join(roles)}-{secrets.token_hex(3)}."
    state = work / prefix.rstrip(".")
    state.mkdir()
    redis_url = os.environ["DRIFTLINE_TEST_REDIS"]
    # With one partition of features and labels the joiner publishes TrainingExamples in the labels' order; with
    # several, in an order that depends on how the consumer interleaves the partitions (run to run, any layout).
    p = Pipeline(prefix, state, redis_url, extra_env={"DRIFTLINE__KAFKA__PARTITIONS": str(partitions)})
    t0 = time.monotonic()
    try:
        p.start(*roles, timeout=120)
        common = ["--id-col", "id", "--label-col", "y", "--json"]
        p.cli("produce", "features", "--file", str(first), *common, timeout=300)
        p.wait_until(f"{n1} predictions", lambda: len(p.values("predictions")) >= n1, timeout=300, interval=2)
        p.cli("produce", "labels", "--file", str(first), *common, timeout=300)
        p.wait_learned(n1, timeout=600)
        # Releases settle: no new one for 10 s, then the scorer has had 10 s more to load the last.
        last, since = len(p.releases()), time.monotonic()
        while time.monotonic() - since < 10:
            time.sleep(1)
            if (now := len(p.releases())) != last:
                last, since = now, time.monotonic()
        time.sleep(10)
        p.cli("produce", "features", "--file", str(second), *common, timeout=300)
        p.wait_until(f"{n1 + n2} predictions", lambda: len(p.values("predictions")) >= n1 + n2, 300, 2)
        out = {
            "prefix": prefix,
            "seconds": round(time.monotonic() - t0, 1),
            "predictions": p.values("predictions"),
            "training": p.values("training"),
            "releases": p.releases(),
            "drift": p.values("drift"),
            "deadletter": p.values("deadletter"),
        }
        p.cli("cleanup", "--prefix", prefix, "--force", check=False)
        return out
    finally:
        p.stop()


def _release_key(r: dict[str, Any]) -> tuple[Any, ...]:
    metrics = r.get("metrics") or {}
    return (int(r["version"]), r.get("parent"), r.get("reason"), metrics.get("n_learned"), r.get("sha256"))


def _diff(name: str, a: dict[str, Any], b: dict[str, Any], limit: int = 3) -> tuple[int, str]:
    keys = sorted(set(a) | set(b))
    differ = [k for k in keys if a.get(k) != b.get(k)]
    sample = "; ".join(f"{k}: {a.get(k)} vs {b.get(k)}" for k in differ[:limit])
    return len(differ), f"{name}: {len(keys)} compared, {len(differ)} differ" + (
        f" (e.g. {sample})" if differ else ""
    )


def layouts(work: Path, n1: int, n2: int, partitions: int) -> None:
    part = f"layouts, {partitions} partition(s)"
    first, second = work / "first.csv", work / "second.csv"
    _stream(first, "a", n1, 1)
    _stream(second, "b", n2, 2)
    runs = {}
    for roles in (("all",), ("score", "join", "train")):
        name = "+".join(roles)
        runs[name] = _layout(roles, work, first, second, n1, n2, partitions)
        (work / f"layout-{name}.json").write_text(json.dumps(runs[name], default=str))
        print(f"layout {name}: {runs[name]['seconds']} s, {len(runs[name]['releases'])} releases", flush=True)
    a, b = runs["all"], runs["score+join+train"]

    def by_id(records: list[dict[str, Any]], fields: tuple[str, ...]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for r in records:
            out.setdefault(r["id"], []).append(tuple(r.get(f) for f in fields))
        return out

    for what, recs_a, recs_b in (("predictions", a["predictions"], b["predictions"]),):
        ids_a, ids_b = by_id(recs_a, ("id",)), by_id(recs_b, ("id",))
        dup_a = sum(len(v) - 1 for v in ids_a.values())
        dup_b = sum(len(v) - 1 for v in ids_b.values())
        record(
            part,
            f"{what}: every event answered once in both layouts",
            len(ids_a) == len(ids_b) == n1 + n2 and dup_a == dup_b == 0,
            f"all: {len(ids_a)} ids, {dup_a} duplicates; split: {len(ids_b)} ids, {dup_b} duplicates",
        )
    rel_a = {r["version"]: _release_key(r) for r in a["releases"]}
    rel_b = {r["version"]: _release_key(r) for r in b["releases"]}
    n, text = _diff("releases (version, parent, reason, n_learned, sha256)", rel_a, rel_b)
    record(part, "releases identical", n == 0, text)
    train_a = {r["id"]: (r["label"], r["prediction"], r["version"]) for r in a["training"]}
    train_b = {r["id"]: (r["label"], r["prediction"], r["version"]) for r in b["training"]}
    n, text = _diff("training examples (label, prediction, version served)", train_a, train_b)
    record(part, "training examples identical", n == 0, text)
    order_a = [r["id"] for r in a["training"]]
    order_b = [r["id"] for r in b["training"]]
    pairs = enumerate(zip(order_a, order_b, strict=False))
    first_diff = next((i for i, (x, y) in pairs if x != y), None)
    record(
        part,
        "training examples in the same order (what the trainer learns in)",
        order_a == order_b,
        f"{len(order_a)} and {len(order_b)} examples; first difference at position {first_diff}",
    )
    for phase, ids in (
        ("before any label (first file)", "a"),
        ("after every label learned (second file)", "b"),
    ):
        pa = {r["id"]: (r["prediction"], r["version"]) for r in a["predictions"] if r["id"].startswith(ids)}
        pb = {r["id"]: (r["prediction"], r["version"]) for r in b["predictions"] if r["id"].startswith(ids)}
        n, text = _diff(f"predictions {phase} (prediction, version)", pa, pb)
        record(part, f"predictions identical, {phase}", n == 0, text)
        qa = {
            r["id"]: {k: round(v, 9) for k, v in (r.get("proba") or {}).items()}
            for r in a["predictions"]
            if r["id"].startswith(ids)
        }
        qb = {
            r["id"]: {k: round(v, 9) for k, v in (r.get("proba") or {}).items()}
            for r in b["predictions"]
            if r["id"].startswith(ids)
        }
        n, text = _diff(f"probabilities {phase}", qa, qb)
        record(part, f"probabilities identical, {phase}", n == 0, text)
    for what in ("drift", "deadletter"):
        ka = (
            sorted((r.get("detector"), r.get("signal")) for r in a[what]) if what == "drift" else len(a[what])
        )
        kb = (
            sorted((r.get("detector"), r.get("signal")) for r in b[what]) if what == "drift" else len(b[what])
        )
        record(part, f"{what} records", None if what == "drift" else ka == kb, f"all: {ka}; split: {kb}")


# ------------------------------------------------------------------------------------------------------ dead


def dead() -> None:
    tools = Path(PY).parent
    vulture = shutil.which("vulture") or str(tools / "vulture")
    packages = ["driftline", "schemas", "learners", "connectors", "streams", "bench"]
    done = run([vulture, *packages, "--min-confidence", "80"], plain_env(), 300)
    found = [line for line in done.stdout.splitlines() if line.strip()]
    record(
        "dead",
        "vulture --min-confidence 80 over the packages",
        not found,
        f"rc {done.returncode}, {len(found)} finding(s)" + (": " + " | ".join(found[:12]) if found else ""),
    )
    li = run([str(tools / "lint-imports")], plain_env(), 300)
    kept = re.findall(r"(\d+) kept, (\d+) broken", li.stdout)
    record(
        "dead",
        "lint-imports: the layer contracts (and no cycles)",
        li.returncode == 0,
        f"rc {li.returncode}: {kept[-1][0] if kept else '?'} kept, {kept[-1][1] if kept else '?'} broken",
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", default="plugins,detectors,layouts,dead")
    ap.add_argument("--events", type=int, default=1500, help="events of the first file (layouts)")
    ap.add_argument("--second", type=int, default=500, help="events of the second file (layouts)")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    ap.add_argument(
        "--settings",
        default="error_detector,loss_detector,feature_detector",
        help="which detector settings to drive (detectors)",
    )
    ap.add_argument("--partitions", type=int, default=1, help="partitions of features and labels (layouts)")
    args = ap.parse_args()
    parts = args.only.split(",")
    work = Path(tempfile.mkdtemp(prefix="arch41-"))
    print(f"work directory {work}", flush=True)
    try:
        if "dead" in parts:
            dead()
        if "plugins" in parts:
            plugins(work)
        if "detectors" in parts:
            detectors(work, args.settings.split(","))
        if "layouts" in parts:
            if "DRIFTLINE_TEST_KAFKA" not in os.environ or "DRIFTLINE_TEST_REDIS" not in os.environ:
                raise SystemExit(
                    "layouts: set DRIFTLINE_TEST_KAFKA and DRIFTLINE_TEST_REDIS to a stack of your own"
                )
            layouts(work, args.events, args.second, args.partitions)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    print("\n| part | check | result | detail |\n|---|---|---|---|")
    for part, check, verdict, detail in ROWS:
        print(f"| {part} | {check} | {verdict} | {detail.replace('|', '/')} |")
    return 1 if any(v == "FAIL" for _, _, v, _ in ROWS) else 0


if __name__ == "__main__":
    sys.exit(main())
