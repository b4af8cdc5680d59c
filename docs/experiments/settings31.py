"""Session 31 (outside14): every setting, table-driven. Prints one row per check: PASS, or DEFECT with what happened.

For every leaf of ``driftline.settings.Settings``:
- set by YAML and by ``DRIFTLINE__SECTION__FIELD``: ``driftline config show --json`` shows the value;
- bad values (wrong type, negative, zero, huge, NaN, inf, empty string) through ``driftline config validate``:
  exit 2, one line naming the field, no traceback; or accepted where the value is meaningful (``ACCEPTED`` below,
  with the reason);
then the file-level cases (a list, a scalar, a tab, a file that does not exist, unknown and misspelt keys), the
contract's environment variables, and the precedence flag > environment > file > default.

Run from the worktree: ``PYTHONPATH=$PWD /work/main/.venv/bin/python docs/experiments/settings31.py``
(in-process calls of ``streams.cli.main``: 740 rows in ~10 s; ``--failing`` prints only the defects).

Measured 2026-12-05 18:26 UTC (load ~3): session 30's tree (3eb78e1, `git archive` into /tmp, same script) 688 pass,
52 defects; branch outside14 739 pass, 1 defect (``model.checkpoint_every: -1`` accepted: the setting is read by
nothing; the lead removed it: a file naming it is refused as an unknown setting).
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import os
import sys
import tempfile
import typing
from pathlib import Path
from typing import Any

from driftline.settings import Secret, Settings
from streams.cli import main

KEY = "k" * 40  # a signing key long enough (>= 32 bytes)

# Values a setting accepts on purpose: (field, YAML text) -> why.
ACCEPTED: dict[tuple[str, str], str] = {
    ("kafka.topic_prefix", "''"): "no prefix: the contract's bare topic names",
    ("kafka.retention_ms", "-1"): "Kafka's retention.ms=-1: keep for ever",
    ("kafka.retention_ms", "0"): "Kafka accepts 0 (delete at once); the operator's choice",
    ("kafka.retention_ms", "''"): "null: the cluster's default",
    ("kafka.client_id", "''"): "librdkafka's own default id",
    ("redis.key_prefix", "''"): "keys without a prefix",
    ("model.max_inline_bytes", "0"): "every artifact by reference",
    ("model.artifact_store", "''"): "the current directory",
    ("model.label_col", "''"): "replay's default label column; --label-col sets it",
    ("serving.batch_timeout_s", "0"): "no wait for a fuller batch",
    ("serving.model_memory_mb", "0"): "keep only the model in use loaded",
    ("routing.models", "'x'"): "a string is a comma-separated list (as from the environment)",
    ("metrics.port", "0"): "an ephemeral port",
    ("metrics.host", "''"): "all interfaces (prometheus_client's meaning; the operator's choice)",
    ("state_dir", "''"): "the current directory",
}
for _f in ("sasl_mechanism", "sasl_username", "ssl_cafile", "ssl_certfile", "ssl_keyfile"):
    ACCEPTED[(f"kafka.{_f}", "''")] = "null: not set"
for _f in ("sasl_password", "ssl_key_password"):
    ACCEPTED[(f"kafka.{_f}", "''")] = "no password"
for _f in ("signing_key", "previous_signing_key", "operator_key"):
    ACCEPTED[(f"model.{_f}", "''")] = "not set (workers refuse to start without a signing key)"
for _f in ("segment_feature", "reference_file"):
    ACCEPTED[(f"model.{_f}", "''")] = "null: off"
for _f in ("feature", "default"):
    ACCEPTED[(f"routing.{_f}", "''")] = "null: off"
ACCEPTED[("guard.fairness_max_gap", "''")] = "null: off"
# A zero that means something (the live `set` accepts it too): a margin of 0, a count of 0, an immediate alarm.
ZERO_OK = {
    "guard.min_examples", "guard.challenger_grace", "guard.non_inferiority_margin", "guard.superiority_margin",
    "guard.segment_margin", "guard.reference_margin", "guard.hold_margin", "guard.max_predict_latency_ms",
    "guard.max_reference", "guard.probation_examples", "guard.carry_release_every", "guard.recovery_margin",
    "guard.recovery_labels", "guard.fairness_max_gap", "drift.adwin_grace", "drift.ph_loss_delta",
    "drift.ph_loss_threshold", "drift.ph_min_instances", "drift.feature_warmup", "drift.ph_feature_delta",
    "drift.ph_feature_threshold", "drift.feature_cooldown", "drift.max_features", "drift.sentinel_overlap",
}  # fmt: skip


def leaves(cls: Any, prefix: str = "") -> typing.Iterator[tuple[str, Any]]:
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        if dataclasses.is_dataclass(tp) and f.name not in ("learner", "challenger"):
            yield from leaves(tp, f"{prefix}{f.name}.")
        else:
            yield f"{prefix}{f.name}", tp


def run(argv: list[str], env: dict[str, str] | None = None) -> tuple[Any, str, str]:
    """``driftline ARGV`` in-process: (exit code or 'TRACEBACK ...', stdout, stderr)."""
    saved = dict(os.environ)
    os.environ.clear()
    # A signing key long enough, unless the row sets one (DRIFTLINE_SIGNING_KEY beats its _FILE form).
    base = (
        {}
        if any(k.startswith("DRIFTLINE_SIGNING_KEY") for k in env or {})
        else {"DRIFTLINE_SIGNING_KEY": KEY}
    )
    os.environ.update({**base, **(env or {})})
    out, err = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            rc: Any = main(argv)
    except SystemExit as exc:
        rc = exc.code
    except BaseException as exc:  # a traceback is a defect
        rc = f"TRACEBACK {type(exc).__name__}: {str(exc)[:100]}"
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return rc, out.getvalue(), err.getvalue()


def yaml_doc(path: str, raw: str) -> str:
    parts = path.split(".")
    text = "".join("  " * i + p + ":\n" for i, p in enumerate(parts[:-1]))
    return text + "  " * (len(parts) - 1) + f"{parts[-1]}: {raw}\n"


def write(tmp: Path, text: str) -> str:
    file = tmp / "c.yaml"
    file.write_text(text)
    return str(file)


def shown(env: dict[str, str], dotted: str) -> Any:
    rc, out, err = run(["config", "show", "--json"], env)
    if rc != 0:
        return f"rc={rc} {err.strip()[:80]}"
    node: Any = json.loads(out)
    for part in dotted.split("."):
        node = node[part]
    return node


GOOD: dict[Any, tuple[str, Any]] = {int: ("7", 7), float: ("0.25", 0.25), bool: ("true", True)}
BAD: dict[Any, list[str]] = {
    int: [
        "abc",
        "[1]",
        "-1",
        "0",
        "1000000000000000000000000000000",
        ".nan",
        "''",
        "1.5",
    ],  # 10^30: > 64 bits
    float: ["abc", "[1]", "-1", "0", "1e400", ".nan", ".inf", "''"],
    str: ["''", "[1]", "{a: 1}"],
    bool: ["maybe", "2", "''"],
    Secret: ["123", "[1]", "''"],
}
# Good values for the fields whose range a plain 7 / 0.25 misses.
GOOD_FOR = {
    "kafka.trainer_session_timeout_s": ("30.0", 30.0),
    "kafka.session_timeout_s": ("30.0", 30.0),
    "metrics.port": ("9200", 9200),
    "serving.max_record_bytes": ("200000", 200000),
    "guard.max_examples": ("3000", 3000),
    "routing.max_models": ("1000", 1000),
    "kafka.bootstrap": ("127.0.0.1:1234", "127.0.0.1:1234"),
    "kafka.topic_prefix": ("t31.", "t31."),
    "model.name": ("m31", "m31"),
    "redis.url": ("redis://127.0.0.1:1/0", "redis://127.0.0.1:1/0"),
    "kafka.security_protocol": ("SSL", "SSL"),
    "kafka.sasl_mechanism": ("PLAIN", "PLAIN"),
    "model.task": ("regression", "regression"),
    "serving.output_encoding": ("json", "json"),
    "drift.error_detector": ("kswin", "kswin"),
    "drift.loss_detector": ("adwin", "adwin"),
    "drift.feature_detector": ("adwin", "adwin"),
    "drift.sentinel_threshold": ("5.0", 5.0),
    "routing.default": ("m31", "m31"),
}


def main_table(only_failing: bool) -> int:
    rows: list[tuple[str, str, str]] = []

    def row(ok: bool, what: str, detail: str) -> None:
        rows.append(("PASS" if ok else "DEFECT", what, detail))

    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        for path, tp in leaves(Settings):
            base = tp
            args = typing.get_args(tp)
            if args and type(None) in args:
                base = next(a for a in args if a is not type(None))
            secret = base is Secret
            # 1. takes effect by YAML and by DRIFTLINE__SECTION__FIELD (secrets: masked, so only "set")
            good = GOOD_FOR.get(path) or GOOD.get(base) or ("abc", "abc")
            if (
                base in (dict,)
                or typing.get_origin(base) in (dict, list)
                or path in ("model.learner", "model.challenger")
            ):
                good = None  # mappings and lists: covered by the unit tests (test_settings.py)
            if good is not None:
                raw, expected = good
                if secret:
                    raw, expected = (KEY, "********") if path.endswith("_key") else ("pw", "********")
                    if path == "redis.url":
                        raw, expected = "redis://127.0.0.1:1/0", "redis://127.0.0.1:1/0"
                f = write(tmp, yaml_doc(path, raw))
                got = shown({"DRIFTLINE_CONFIG": f}, path)
                row(got == expected, f"{path}: YAML {raw!r}", f"config show: {got!r}")
                var = "DRIFTLINE__" + "__".join(p.upper() for p in path.split("."))
                got = shown({var: raw}, path)
                row(got == expected, f"{path}: {var}={raw}", f"config show: {got!r}")
            # 2. bad values: exit 2, one line naming the field, no traceback (or a meaningful value, ACCEPTED)
            for raw in BAD.get(base, ["[1]", "5"]):
                f = write(tmp, yaml_doc(path, raw))
                rc, out, err = run(["config", "validate", f])
                text = (err + out).strip()
                if rc == 0:
                    why = ACCEPTED.get((path, raw)) or (
                        "0 is meaningful" if raw == "0" and path in ZERO_OK else ""
                    )
                    row(
                        bool(why),
                        f"{path}: {raw}",
                        f"accepted ({why})" if why else "accepted: should be refused",
                    )
                else:
                    one_line = len(text.splitlines()) == 1
                    named = path in text or path.split(".")[0] in text
                    ok = rc == 2 and one_line and named and "Traceback" not in text
                    row(ok, f"{path}: {raw}", f"rc={rc} {text.replace(f, 'FILE')[:110]}")
        # 3. the file itself
        for label, text in (
            ("a list", "- a\n- b\n"),
            ("a scalar", "just text\n"),
            ("a tab", "kafka:\n\tpartitions: 3\n"),
            ("unknown section", "kafak:\n  partitions: 3\n"),
            ("misspelt key", "guard:\n  alpah: 0.1\n"),
            ("a section that is a scalar", "kafka: 5\n"),
            ("not UTF-8", None),
        ):
            file = tmp / "f.yaml"
            if text is None:
                file.write_bytes(b"kafka:\n  bootstrap: \xff\xfe\n")
            else:
                file.write_text(text)
            rc, out, err = run(["config", "validate", str(file)])
            msg = (err + out).strip()
            ok = rc == 2 and "Traceback" not in msg and str(file) in msg
            row(ok, f"file: {label}", f"rc={rc} {msg.replace(str(file), 'FILE')[:110]}")
        rc, out, err = run(["config", "validate", str(tmp / "missing.yaml")])
        row(
            rc == 2 and "missing.yaml" in err,
            "file: does not exist (validate)",
            f"rc={rc} {err.strip()[:100]}",
        )
        rc, out, err = run(["status"], {"DRIFTLINE_CONFIG": str(tmp / "missing.yaml")})
        row(rc == 2 and "missing.yaml" in err, "file: does not exist (DRIFTLINE_CONFIG, status)", f"rc={rc}")
        rc, out, err = run(["config", "show"], {"DRIFTLINE_CONFIG": str(tmp / "missing.yaml")})
        row(rc == 2 and "missing.yaml" in err, "file: does not exist (config show)", f"rc={rc}")
        # 4. the contract's environment variables and the precedence flag > env > file > default
        f = write(tmp, "kafka:\n  bootstrap: file:1\n  topic_prefix: file.\nmodel:\n  name: filemodel\n")
        for var, dotted, flag in (
            ("DRIFTLINE_KAFKA_BOOTSTRAP", "kafka.bootstrap", "--bootstrap"),
            ("DRIFTLINE_TOPIC_PREFIX", "kafka.topic_prefix", "--topic-prefix"),
            ("DRIFTLINE_MODEL", "model.name", "--model"),
        ):
            default = shown({}, dotted)
            from_file = shown({"DRIFTLINE_CONFIG": f}, dotted)
            from_env = shown({"DRIFTLINE_CONFIG": f, var: "envvalue"}, dotted)
            rc, out, err = run(
                [flag, "flagvalue", "config", "show", "--json"], {"DRIFTLINE_CONFIG": f, var: "envvalue"}
            )
            node: Any = json.loads(out) if rc == 0 else {}
            for part in dotted.split("."):
                node = node.get(part, {}) if isinstance(node, dict) else None
            ok = from_file not in (default,) and from_env == "envvalue" and node == "flagvalue"
            row(
                ok,
                f"precedence {dotted}",
                f"default {default!r} < file {from_file!r} < env {from_env!r} < flag {node!r}",
            )
        for var, dotted, value, expected in (
            ("DRIFTLINE_REDIS_URL", "redis.url", "redis://:pw@h:1/0", "redis://:***@h:1/0"),
            ("DRIFTLINE_SIGNING_KEY", "model.signing_key", KEY, "********"),
            ("DRIFTLINE_OPERATOR_KEY", "model.operator_key", KEY, "********"),
            ("DRIFTLINE_PREVIOUS_SIGNING_KEY", "model.previous_signing_key", KEY, "********"),
            ("DRIFTLINE_METRICS_PORT", "metrics.port", "9333", 9333),
            ("DRIFTLINE_STATE_DIR", "state_dir", "/tmp/s31", "/tmp/s31"),
            ("DRIFTLINE_KAFKA_SASL_PASSWORD", "kafka.sasl_password", "pw", "********"),
            ("DRIFTLINE_KAFKA_SSL_KEY_PASSWORD", "kafka.ssl_key_password", "pw", "********"),
        ):
            got = shown({var: value}, dotted)
            row(got == expected, f"env {var}", f"config show {dotted}: {got!r}")
        keyfile = tmp / "key"
        keyfile.write_text(KEY + "\n")
        env = {"DRIFTLINE_SIGNING_KEY_FILE": str(keyfile)}
        rc, out, err = run(["config", "show", "--json"], env)
        row(
            rc == 0 and KEY not in out,
            "env DRIFTLINE_SIGNING_KEY_FILE",
            f"rc={rc}, key masked: {KEY not in out}",
        )
        for var, value in (
            ("DRIFTLINE_METRICS_PORT", "abc"),
            ("DRIFTLINE_METRICS_PORT", "70000"),
            ("DRIFTLINE_SIGNING_KEY", "short"),
            ("DRIFTLINE_REDIS_URL", "http://x"),
            ("DRIFTLINE_MODEL", "bad name"),
            ("DRIFTLINE_SIGNING_KEY_FILE", "/nonexistent/key"),
        ):
            rc, out, err = run(["config", "show"], {var: value})
            ok = rc == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err
            row(ok, f"env {var}={value}", f"rc={rc} {err.strip()[:100]}")
    shown_rows = [r for r in rows if r[0] != "PASS"] if only_failing else rows
    for status, what, detail in shown_rows:
        print(f"{status:6s}  {what:60s}  {detail}")
    defects = sum(r[0] != "PASS" for r in rows)
    print(f"\n{len(rows)} rows, {len(rows) - defects} pass, {defects} defect(s)")
    return 1 if defects else 0


if __name__ == "__main__":
    sys.exit(main_table("--failing" in sys.argv))
