"""A release's metrics and decision encoded once for every record that holds them (session 26) write the same bytes:

- :func:`driftline.audit_chain.spliced` is ``json``'s canonical text of the whole record;
- :func:`driftline.audit_chain.make_line` with ``text`` or ``texts`` gives the entry and line it gives without;
- :func:`learners.artifacts.build_release` with ``metrics_text`` gives the record it gives without (the header,
  hence the signature), also where the header's metrics differ from the text's (it then encodes its own).
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from driftline.audit_chain import AuditHead, make_line, plain_text, spliced
from learners.artifacts import build_release

KEY = b"a-signing-key-of-at-least-32-bytes!!"
CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)

keys = st.text(max_size=6)  # unicode, quotes, backslashes and control characters included
floats = st.floats(allow_nan=True, allow_infinity=True) | st.sampled_from([0.0, -0.0, 1e-320, 1e300])
scalars = st.none() | st.booleans() | st.integers(-(2**70), 2**70) | floats | st.text(max_size=8)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=4),
    max_leaves=12,
)
records = st.dictionaries(keys, values, max_size=8)


@settings(max_examples=300, deadline=None)
@given(records, st.data())
def test_spliced_is_the_canonical_text(record: dict[str, Any], data: st.DataObject) -> None:
    chosen = data.draw(st.sets(st.sampled_from(sorted(record)))) if record else set()
    texts = {k: CANONICAL.encode(record[k]) for k in chosen}
    assert spliced(record, texts) == CANONICAL.encode(record)


@settings(max_examples=200, deadline=None)
@given(records, st.data(), st.integers(0, 10**6), st.sampled_from(["release", "decision"]))
def test_make_line_with_texts_writes_the_same_bytes(
    record: dict[str, Any], data: st.DataObject, seq: int, kind: str
) -> None:
    head = AuditHead(seq, "f" * 64)
    expected = make_line(head, kind, "m", record, KEY, ts=17)
    text = plain_text(record)
    assert text is not None  # (generated records are plain JSON)
    assert make_line(head, kind, "m", record, KEY, ts=17, text=text) == expected
    chosen = data.draw(st.sets(st.sampled_from(sorted(record)))) if record else set()
    texts = {k: t for k in chosen if (t := plain_text(record[k])) is not None}
    assert make_line(head, kind, "m", record, KEY, ts=17, texts=texts) == expected


def test_texts_with_a_value_that_is_not_plain_take_the_round_trip() -> None:
    # A numpy float, a tuple, an int key elsewhere in the record: the record's text is the JSON round trip's,
    # whatever the texts of its plain values.
    metrics = {"a": 0.25, "b": -0.0, "n": float("nan")}
    for odd in (np.float64(0.5), (1, 2.5), {1: "x"}, {"k": np.int64(3)}):
        record = {"metrics": metrics, "other": odd, "version": 3}
        texts = {"metrics": plain_text(metrics)}
        assert texts["metrics"] is not None
        expected = make_line(None, "release", "m", record, KEY, ts=5)
        assert make_line(None, "release", "m", record, KEY, ts=5, texts=texts) == expected
    assert plain_text({"x": np.float64(1.0)}) is None and plain_text({1: 2}) is None


def _built(metrics: dict[Any, Any], n_learned: int, metrics_text: str | None) -> dict[str, Any]:
    return build_release(
        {"a model": [1, 2, 3]},
        name="m",
        version=4,
        parent=3,
        reason="incremental",
        metrics=metrics,
        key=KEY,
        n_learned=n_learned,
        data_range={"first_index": 0, "last_index": 9},
        decision='{"outcome": "promote"}',
        created_at=1_700_000_000_000,
        metrics_text=metrics_text,
    )


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.text(max_size=8), floats, max_size=12), st.integers(0, 10**9))
def test_build_release_with_the_metrics_text_signs_the_same_header(
    metrics: dict[str, float], n_learned: int
) -> None:
    metrics = {**metrics, "n_learned": float(n_learned)}
    assert _built(metrics, n_learned, plain_text(metrics)) == _built(metrics, n_learned, None)


def test_build_release_encodes_its_own_metrics_when_they_differ_from_the_text() -> None:
    cases: list[tuple[dict[Any, Any], int]] = [
        ({"n_learned": -0.0, "a": 1.0}, 0),  # -0.0 == 0.0, but written apart
        ({"n_learned": 5.0, "a": 1}, 5),  # an int becomes 1.0 in the header
        ({"n_learned": 5.0, "a": True}, 5),
        ({"a": 1.0}, 5),  # n_learned added by build_release
        ({"n_learned": 6.0, "a": 1.0}, 5),  # n_learned replaced
        ({"n_learned": 5.0, "a": math.inf}, 5),
    ]
    for metrics, n in cases:
        text = plain_text(metrics)
        assert text is not None
        assert _built(metrics, n, text) == _built(metrics, n, None)
    built = _built({"n_learned": 5.0, "a": 1.0}, 5, None)
    assert json.loads(built["header"])["metrics"] == {"a": 1.0, "n_learned": 5.0}


def test_a_record_holding_a_marker_string_is_spliced_value_by_value() -> None:
    metrics = {"a": 0.5, "n_learned": 3.0}
    text = plain_text(metrics)
    assert text is not None
    for odd in ("\x00metrics\x00", '"\x00metrics\x00', "x\x00metrics\x00y"):
        for record in ({"metrics": metrics, "note": odd}, {"metrics": metrics, odd: 1.0}):
            assert spliced(record, {"metrics": text}) == CANONICAL.encode(record)
            expected = make_line(None, "release", "m", record, KEY, ts=1)
            assert make_line(None, "release", "m", record, KEY, ts=1, texts={"metrics": text}) == expected
