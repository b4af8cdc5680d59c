"""Tampered releases on the ``models`` topic of a running scorer.

A byte flipped in the artifact, a release signed with another key, an older signed release replayed, an unsigned
pickle that would run code, and a pickle that would run code signed with the right key (a stolen key): each is
refused before it is unpickled, counted in ``driftline_releases_rejected_total{reason=...}``, logged as a
``SECURITY:`` event, and the served model stays (same version, predictions keep flowing). A genuine release
published afterwards is still adopted.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from driftline.config import LearnerSpec
from learners.artifacts import build_release, sign
from learners.specs import build_learner
from tests.fault_helpers import make_events, publish, running_all
from tests.pipeline_helpers import SIGNING_KEY, Pipeline
from tests.test_safe_pickle_amplification import deque_copies, generator_ctor_copy

pytestmark = [pytest.mark.kafka]

KEY = SIGNING_KEY.encode()
MODEL = "default"


@pytest.fixture
def pipeline(prefix: str, redis_url: str, tmp_path: Path) -> Iterator[Pipeline]:
    with running_all(Pipeline(prefix, tmp_path, redis_url)) as p:
        yield p


class _RunsCode:
    """Unpickling this runs ``os.system(command)``."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return (os.system, (self.command,))


def release(version: int, *, key: bytes = KEY, n: int = 200) -> dict[str, Any]:
    model = build_learner(LearnerSpec(), "classification", 0)
    for e in make_events(n, seed=version):
        model.learn_one(e.features, e.label)
    return build_release(
        model, name=MODEL, version=version, parent=version - 1 if version > 1 else None,
        reason="manual", metrics={}, key=key, n_learned=n,
    )  # fmt: skip


def flipped(record: dict[str, Any]) -> dict[str, Any]:
    artifact = bytearray(record["artifact"])
    artifact[len(artifact) // 2] ^= 0x01
    return dict(record, artifact=bytes(artifact))


def malicious_payload(marker: Path) -> bytes:
    return zlib.compress(pickle.dumps(_RunsCode(f"touch {marker}"), protocol=5))


def unsigned_malicious(version: int, marker: Path) -> dict[str, Any]:
    payload = malicious_payload(marker)
    return dict(
        release(version),
        artifact=payload,
        sha256=hashlib.sha256(payload).hexdigest(),
        signature="",
        header="",
    )


def signed_malicious(version: int, marker: Path) -> dict[str, Any]:
    """A code-running pickle with a correct signature: what someone holding the signing key could publish."""
    return signed_payload(version, malicious_payload(marker))


def signed_payload(version: int, payload: bytes) -> dict[str, Any]:
    """A release carrying ``payload`` with a correct signature."""
    record = release(version)
    header = dict(json.loads(record["header"]), sha256=hashlib.sha256(payload).hexdigest())
    header_json = json.dumps(header, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return dict(
        record,
        artifact=payload,
        sha256=header["sha256"],
        header=header_json,
        signature=sign(header_json, payload, KEY),
    )


def _served(pipeline: Pipeline) -> float:
    return pipeline.metric_sum("driftline_served_model_version", model=MODEL)


def _rejected(pipeline: Pipeline, reason: str | None = None) -> float:
    labels = {"model": MODEL} if reason is None else {"model": MODEL, "reason": reason}
    return pipeline.metric_sum("driftline_releases_rejected_total", **labels)


def _publish_release(pipeline: Pipeline, record: dict[str, Any]) -> None:
    with pipeline.producer() as producer:
        producer.send("models", "ModelRelease", record, MODEL)


def _predictions_served_by(pipeline: Pipeline, tag: str, version: int) -> None:
    events = make_events(30, seed=11, tag=tag)
    publish(pipeline, events, labels=False)
    ids = {e.id for e in events}

    def served() -> list[dict[str, Any]]:
        return [r for r in pipeline.values("predictions") if r["id"] in ids]

    pipeline.wait_until(f"predictions for {tag}", lambda: len(served()) >= len(ids))
    assert {int(r["version"]) for r in served()} == {version}


CASES = [  # (case, expected reason label)
    ("flipped", "signature"),
    ("wrong_key", "signature"),
    ("replayed", "replay"),
    ("unsigned_pickle", "signature"),
    ("signed_pickle", "allow_list"),
    # One list copied by 200 deques (4M items; the 576-byte payload of session 35 made 5,000 of 200,000), and
    # numpy's __generator_ctor calling a pickled partial(copy.deepcopy) at load time.
    ("signed_copies", "allow_list"),
    ("signed_generator_ctor", "allow_list"),
]


def test_tampered_releases_are_refused_and_the_model_keeps_serving(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    (scorer,) = pipeline.start("score")
    genuine = [release(1), release(2)]
    for record in genuine:
        _publish_release(pipeline, record)
    pipeline.wait_until("v2 served", lambda: _served(pipeline) == 2)
    _predictions_served_by(pipeline, "before", 2)

    markers = {case: tmp_path / f"pwned-{case}" for case, _ in CASES}
    build: dict[str, Callable[[], dict[str, Any]]] = {
        "flipped": lambda: flipped(release(3)),
        "wrong_key": lambda: release(4, key=b"someone-else"),
        "replayed": lambda: genuine[0],
        "unsigned_pickle": lambda: unsigned_malicious(5, markers["unsigned_pickle"]),
        "signed_pickle": lambda: signed_malicious(6, markers["signed_pickle"]),
        "signed_copies": lambda: signed_payload(7, zlib.compress(deque_copies(20_000, 200))),
        "signed_generator_ctor": lambda: signed_payload(8, zlib.compress(generator_ctor_copy(20_000))),
    }
    expected: dict[str, float] = {}
    for n, (case, reason) in enumerate(CASES, start=1):
        tampered = build[case]()
        # One at a time: the follower loads only the newest release of what it reads in one go.
        _publish_release(pipeline, tampered)

        def refused(n: int = n) -> bool:
            return _rejected(pipeline) >= n

        pipeline.wait_until(f"{case} rejected", refused, timeout=30)
        expected[reason] = expected.get(reason, 0) + 1
        assert _rejected(pipeline, reason) == expected[reason], f"{case}: not counted as {reason!r}"
        assert not markers[case].exists(), f"{case}: the malicious pickle ran code"
        log = scorer.log_tail(400)
        assert f"SECURITY: release {MODEL} v{tampered['version']} refused" in log, (
            f"{case}: not logged\n{log}"
        )
        assert _served(pipeline) == 2, f"{case}: the served model changed"
    pipeline.assert_alive()
    _predictions_served_by(pipeline, "after", 2)

    # The follower is not wedged: a genuine newer release is still adopted.
    _publish_release(pipeline, release(9))
    pipeline.wait_until("v9 served", lambda: _served(pipeline) == 9)
    assert _rejected(pipeline) == len(CASES)
