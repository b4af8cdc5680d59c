"""Releases and audit entries stay byte-compatible with what the previous code wrote (issue 16: cheaper releases).

``tests/golden/releases.json`` was written by the code before the release fast paths (commit 1acd5a4) with
``PYTHONPATH=<that tree> python tests/test_release_compat.py --write``: for fixed models and inputs, the
ModelRelease records (payload included) and the audit entries. The current code must build the same records (the
payload may only differ in its zlib stream: the same pickle inside), and the records of either must verify and
load with the loader (:func:`learners.artifacts.load_release`, unchanged).
"""

from __future__ import annotations

import base64
import json
import math
import pickle
import random
import sys
import zlib
from pathlib import Path, PurePosixPath
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

GOLDEN = Path(__file__).with_name("golden") / "releases.json"
KEY = b"compat-signing-key"
CREATED_AT = 1_764_000_000_000
TRAINER_KEY = b"a-trainer-signing-key-of-32-bytes-or-more"


def _rows(n: int, classes: int, seed: int) -> list[tuple[dict[str, Any], Any]]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        x = {f"f{k}": rng.gauss(0.0, 1.0) for k in range(5)}
        x["colour"] = rng.choice(["red", "green", "blue"])
        y = int(x["f0"] + 0.5 * x["f1"] > 0) + (int(x["f2"] > 1.0) if classes > 2 else 0)
        out.append((x, y))
    return out


def _models() -> dict[str, Any]:
    """Learners as the trainer holds them (``Learner`` wrappers), each trained on a fixed stream."""
    from driftline.config import LearnerSpec
    from learners.specs import build_learner

    plan = {
        "logistic_regression": ("logistic_regression", 2, 400),
        "logistic_regression_3_classes": ("logistic_regression", 3, 400),  # one-vs-rest after the third label
        "hoeffding_tree": ("hoeffding_tree", 2, 1500),  # leaves with Gaussian distributions and their RNGs
        "gaussian_nb": ("gaussian_nb", 2, 300),
    }
    out = {}
    for name, (kind, classes, n) in plan.items():
        model = build_learner(LearnerSpec(kind))
        for x, y in _rows(n, classes, seed=len(name)):
            model.learn_one(x, y)
        out[name] = model
    return out


def _release_args(version: int) -> dict[str, Any]:
    decision = json.dumps({"outcome": "promote", "evidence": {"n": 120.0, "e_value": 21.5}}, sort_keys=True)
    return {
        "name": "compat",
        "version": version,
        "parent": version - 1,
        "reason": "incremental",
        "metrics": {"accuracy": 0.8125, "guard.e_value": 21.5, "log_loss": 0.4375},
        "key": KEY,
        "n_learned": 1234,
        "data_range": {"first_index": 0, "last_index": 1233, "first_ts": 5, "last_ts": 1238},
        "decision": decision,
        "created_at": CREATED_AT,
    }


def _audit_records() -> list[tuple[str, dict[str, Any]]]:
    """Records of every shape the trainer audits: nested decisions, floats, non-ASCII text, tuples, integer keys,
    values JSON cannot carry (stored as their str()), and record fields named like chain fields."""
    return [
        ("decision", {"outcome": "hold", "reason": "non_inferiority", "evidence": {"n": 40.0, "e": 1.5e-7}}),
        (
            "release",
            {
                "version": 3,
                "parent": 2,
                "reason": "incremental",
                "metrics": {"accuracy": 0.1 + 0.2, "n_learned": 100.0, "tiny": 5e-324, "big": 1e308},
                "data_range": {"first_index": 0, "last_index": 99},
                "decision": {"outcome": "promote", "checks": {"latency": True, "finite": "ok"}, "x": None},
                "changes": {"top": [{"feature": "température", "delta": -0.25}], "unit": "weight"},
            },
        ),
        (
            "control",
            {"command": "set", "args": {"guard.alpha": "0.05"}, "seq": 99, "hash": "not-the-chain's"},
        ),
        ("odd", {"tuple": (1, 2.5, "x"), 7: "int key", "path": PurePosixPath("/tmp/a"), "nan": math.nan}),
        ("empty", {}),
    ]


def build_golden() -> dict[str, Any]:
    from driftline.audit_chain import head_of, make_entry, sign_head, to_line
    from learners import safe_pickle
    from learners.artifacts import build_release

    releases = {}
    for k, (name, model) in enumerate(_models().items()):
        record = build_release(model, **_release_args(k + 2))
        releases[name] = {
            **record,
            "artifact": base64.b64encode(record["artifact"]).decode(),
            "pickle": base64.b64encode(zlib.decompress(record["artifact"])).decode(),
        }
        assert record["format"] == safe_pickle.FORMAT
    entries, head = [], None
    for ts, (kind, rec) in enumerate(_audit_records()):
        entry = make_entry(head, kind, "compat", rec, KEY, ts=CREATED_AT + ts)
        head = head_of(entry)
        entries.append({"entry": entry, "line": to_line(entry), "head": sign_head(head, "compat", KEY)})
    return {"releases": releases, "audit": entries}


def _golden() -> dict[str, Any]:
    return json.loads(GOLDEN.read_text(encoding="utf-8"))


def _decoded(release: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in release.items() if k != "pickle"}
    out["artifact"] = base64.b64decode(release["artifact"])
    return out


# Models whose pickle changed on purpose after the golden was written, with a name the new pickle holds: session 33
# builds every Hoeffding tree classifier as learners.settled_tree's (a new leaf answers by its majority class until
# it has seen weight of its own); a release of River's own tree, as the golden holds, still loads and answers.
CHANGED = {"hoeffding_tree": b"SettledHoeffdingTreeClassifier"}


def test_releases_are_built_as_before() -> None:
    """The same records, field for field; the payload's pickle byte for byte (its zlib stream may differ)."""
    from learners.artifacts import build_release

    golden = _golden()["releases"]
    models = _models()
    assert set(models) == set(golden)
    for k, (name, model) in enumerate(models.items()):
        # The golden pickles predate the learner's vocabulary (session 14, ``Learner.admit``): a learner pickled
        # before it has none (the class default), so without it the same model must make the same bytes.
        assert model._known, name
        del model._known, model._values
        new = build_release(model, **_release_args(k + 2))
        old = _decoded(golden[name])
        if name in CHANGED:
            # Built differently on purpose since (the old release still verifies and loads alike: the next test).
            assert CHANGED[name] in zlib.decompress(new["artifact"]), name
            assert CHANGED[name] not in base64.b64decode(golden[name]["pickle"]), name
            continue
        assert zlib.decompress(new["artifact"]) == base64.b64decode(golden[name]["pickle"]), name
        same = ("artifact", "sha256", "signature", "header")
        assert {k: v for k, v in new.items() if k not in same} == {
            k: v for k, v in old.items() if k not in same
        }
        if new["artifact"] == old["artifact"]:  # the same zlib stream: the whole record is the same
            assert new == old, name
        else:  # only the digest in the header changed, and the signature with it
            assert json.loads(new["header"]) == {**json.loads(old["header"]), "sha256": new["sha256"]}, name


def test_old_and_new_releases_verify_and_load_alike() -> None:
    from learners.artifacts import build_release, load_release, verify_release

    golden = _golden()["releases"]
    models = _models()
    rows = _rows(50, 3, seed=99)
    for k, (name, model) in enumerate(models.items()):
        new = build_release(model, **_release_args(k + 2))
        old = _decoded(golden[name])
        for record in (old, new):
            header = verify_release(record, key=KEY, current_version=k + 1)
            assert (header.version, header.n_learned) == (k + 2, 1234)
            _, loaded = load_release(record, key=KEY)
            assert [loaded.predict_one(x) for x, _ in rows] == [model.predict_one(x) for x, _ in rows], name
            assert pickle.dumps(loaded.model) is not None  # a loaded model pickles again (checkpoints)


def test_audit_entries_are_written_as_before() -> None:
    """Entry (hash and signature included) and head note, byte for byte (the timestamps are fixed inputs here).

    The line's text changed in session 19 (the record and its top-level copies in canonical form, the text that
    is hashed): the old lines still verify, alone and followed by new ones, and parse to the same entries."""
    from driftline.audit_chain import (
        canonical,
        from_line,
        head_of,
        make_entry,
        make_line,
        sign_head,
        to_line,
        verify,
    )

    golden = _golden()["audit"]
    head, entries, new_lines = None, [], []
    for ts, ((kind, rec), old) in enumerate(zip(_audit_records(), golden, strict=True)):
        entry = make_entry(head, kind, "compat", rec, KEY, ts=CREATED_AT + ts)
        fast, line = make_line(head, kind, "compat", rec, KEY, ts=CREATED_AT + ts)
        head = head_of(entry)
        # NaN is not equal to itself: compare the canonical text, then the head note exactly.
        assert json.dumps(entry, sort_keys=True) == json.dumps(old["entry"], sort_keys=True), kind
        assert json.dumps(fast, sort_keys=True) == json.dumps(old["entry"], sort_keys=True), kind
        assert sign_head(head, "compat", KEY) == old["head"], kind
        # The old line and the new one are the same entry; the new one carries the record's canonical text.
        assert line == to_line(entry), kind
        assert line != old["line"] or not rec, kind
        assert canonical(from_line(line)) == canonical(from_line(old["line"])), kind
        assert f'"record": {canonical(entry["record"]).decode()}, ' in line, kind
        entries.append(entry)
        new_lines.append(line)
    assert verify(entries, [KEY], model="compat").ok
    assert verify([old["entry"] for old in golden], [KEY], model="compat").ok
    old_lines = [from_line(old["line"]) for old in golden]
    assert verify(old_lines, [KEY], model="compat").ok
    for cut in range(len(golden) + 1):  # a file written before, continued by this code
        mixed = old_lines[:cut] + [from_line(line) for line in new_lines[cut:]]
        assert verify(mixed, [KEY], model="compat").ok, cut


if __name__ == "__main__" and sys.argv[1:] == ["--write"]:
    GOLDEN.parent.mkdir(exist_ok=True)
    GOLDEN.write_text(json.dumps(build_golden(), indent=1, sort_keys=True) + "\n", encoding="utf-8")
    print(f"wrote {GOLDEN}")


_KEYS = st.one_of(
    st.text(max_size=6), st.sampled_from(["seq", "hash", "record", "1", "true", "null"]), st.integers(-3, 3)
)
_LEAVES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=8),
    st.builds(PurePosixPath, st.sampled_from(["/a", "b/c"])),  # JSON cannot carry it: stored as str()
)
_JSON = st.recursive(
    _LEAVES,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.tuples(inner, inner),
        st.dictionaries(_KEYS, inner, max_size=4),
    ),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(record=st.dictionaries(_KEYS, _JSON, max_size=6), seq=st.integers(0, 10**6))
def test_make_line_is_make_entry_and_to_line(record: dict[Any, Any], seq: int) -> None:
    """The line built from the record's text is the line to_line writes, for any record (keys that collide as
    strings, chain-field names, NaN, values stored as str())."""
    from driftline.audit_chain import AuditHead, make_entry, make_line, to_line

    head = AuditHead(seq, "ab" * 32)
    entry, line = make_line(head, "release", "compat", record, KEY, ts=seq)
    old = make_entry(head, "release", "compat", record, KEY, ts=seq)
    assert line == to_line(old)
    assert json.dumps(entry, sort_keys=True) == json.dumps(old, sort_keys=True)


def test_small_pickles_are_stored_large_ones_compressed() -> None:
    from learners import safe_pickle

    models = _models()
    small, large = models["logistic_regression"], models["hoeffding_tree"]
    for model, stored in ((small, True), (large, False)):
        payload = safe_pickle.dumps(model)
        raw = zlib.decompress(payload)
        assert (len(raw) < safe_pickle._STORED_BELOW) is stored
        assert (len(payload) > len(raw)) is stored  # stored: the zlib framing on top; compressed: smaller
        assert type(safe_pickle.loads(payload)) is type(model)


class _Captured:
    """The producer's place: keeps what is produced."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes, Any]] = []

    def produce_bytes(self, topic: str, value: bytes, key: Any = None) -> None:
        self.sent.append((topic, value, key))


def test_publish_emits_and_audits_as_before(tmp_path: Path) -> None:
    """Trainer.publish on a real incremental release: the ModelRelease verifies and loads, and the two audit
    entries hold what the code before the fast paths wrote (the decision's JSON; release_explanation)."""
    from driftline.audit_chain import from_line, verify
    from driftline.settings import load_settings
    from learners.artifacts import load_release
    from learners.explain import release_explanation
    from learners.lifecycle import Release
    from schemas.codec import TOPIC_RECORDS
    from streams.audit import AuditLog
    from streams.runtime import WorkerContext
    from streams.train import Trainer, new_lifecycle

    s = load_settings(
        environ={},
        overrides={
            "model.signing_key": TRAINER_KEY.decode(),
            "state_dir": str(tmp_path),
            "model.name": "compat",
        },
    )
    lc = new_lifecycle(s)
    lc.initial_release()
    rows = _rows(5000, 2, seed=4)
    release = None
    for i, (x, y) in enumerate(rows):
        events = lc.learn_one(x, y, index=i, ts=i)
        release = next((e for e in events if isinstance(e, Release) and e.reason == "incremental"), None)
        if release is not None:
            break
    assert release is not None and release.decision is not None
    producer = _Captured()
    ctx = WorkerContext(s, producer=producer, audit_deferred=True)  # type: ignore[arg-type]
    lines: list[bytes] = []
    ctx._audit_logs["compat"] = AuditLog(
        s, "compat", lambda data, model: lines.append(data), topic_entries=lambda: [], deferred=True
    )
    trainer = Trainer(ctx, redis_conn=object())  # type: ignore[arg-type]
    trainer.lifecycle = lc
    # What the code before wrote for the release entry, computed before publish (it reads the lifecycle).
    expected = json.loads(json.dumps(release_explanation(release, lc), default=str))
    trainer.publish(release)

    entries = [from_line(line) for line in lines]
    assert [e["kind"] for e in entries] == ["decision", "release"]
    assert entries[0]["record"] == json.loads(release.decision.to_json())
    assert json.dumps(entries[1]["record"], sort_keys=True) == json.dumps(expected, sort_keys=True)
    assert verify(entries, [TRAINER_KEY], model="compat").ok
    ctx.commit_audit()
    on_disk = (tmp_path / "audit").glob("*compat.jsonl")
    assert [line.encode() for path in on_disk for line in path.read_text().splitlines()] == lines

    [(topic, value, key)] = [m for m in producer.sent if m[0] == s.topic("models")]
    record = ctx.codec.decode(TOPIC_RECORDS["models"], value, topic=topic)
    assert (key, record["version"], record["parent"], record["reason"]) == (
        "compat",
        release.version,
        release.parent,
        "incremental",
    )
    assert record["decision"] == release.decision.to_json()
    header, model = load_release(record, key=TRAINER_KEY, current_version=release.version - 1)
    assert header.metrics == {**release.metrics, "n_learned": float(release.metrics["n_learned"])}
    for x, _ in rows[:100]:
        assert model.predict_proba_one(x) == release.model.predict_proba_one(x)
