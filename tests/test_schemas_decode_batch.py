"""``Codec.decode_many``'s fast path for current-schema records answers exactly as ``decode`` per record.

Property: a batch of valid records, corrupted copies (truncated, extended, bytes flipped, another record type, an
unknown fingerprint, JSON, empty, not bytes) decodes to the same value, or the same SchemaError message, in each
slot as ``decode`` gives for that record alone: a bad record inside a batch is still named and dead-lettered alone.
"""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from driftline.errors import SchemaError
from schemas.codec import Codec, default_codec

CODEC = default_codec()
TOPIC = "t.features"


def _event(i: int, n: int) -> dict[str, Any]:
    return {
        "id": f"e{i}",
        "ts": i,
        "key": None if i % 2 else f"k{i}",
        "features": {f"f{j}": j * 0.5 + i for j in range(n)},
    }


def _one(data: Any, allow_json: bool) -> Any:
    try:
        return CODEC.decode("FeatureEvent", data, topic=TOPIC, allow_json=allow_json)
    except SchemaError as exc:
        return ("error", str(exc))


def _mutate(data: bytes, how: str, k: int) -> Any:
    if how == "truncate":
        return data[: k % len(data)]
    if how == "extend":
        return data + bytes([k % 256])
    if how == "flip":
        pos = 10 + k % max(1, len(data) - 10)
        return data[:pos] + bytes([data[pos] ^ (1 + k % 255)]) + data[pos + 1 :]
    if how == "header":
        return data[:3] + bytes([data[3] ^ 1]) + data[4:]
    if how == "other":
        return CODEC.encode("Label", {"id": "x", "ts": 1, "label": True})
    if how == "json":
        return b'{"id": "j", "ts": 3, "features": {"a": 1.0}}'
    if how == "empty":
        return b""
    if how == "bytearray":
        return bytearray(data)
    if how == "notbytes":
        return "not bytes"
    return data


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    items=st.lists(
        st.tuples(
            st.integers(0, 50),
            st.integers(0, 25),
            st.sampled_from(
                [
                    "ok",
                    "ok",
                    "ok",
                    "truncate",
                    "extend",
                    "flip",
                    "header",
                    "other",
                    "json",
                    "empty",
                    "bytearray",
                    "notbytes",
                ]
            ),
            st.integers(0, 10_000),
        ),
        max_size=30,
    ),
    allow_json=st.booleans(),
)
def test_decode_many_equals_decode_per_record(
    items: list[tuple[int, int, str, int]], allow_json: bool
) -> None:
    datas = [_mutate(CODEC.encode("FeatureEvent", _event(i, n)), how, k) for i, n, how, k in items]
    got = CODEC.decode_many("FeatureEvent", datas, topic=TOPIC, allow_json=allow_json)
    assert len(got) == len(datas)
    for data, answer in zip(datas, got, strict=True):
        want = _one(data, allow_json)
        assert (("error", str(answer)) if isinstance(answer, SchemaError) else answer) == want, data


def test_an_oversized_current_record_is_refused_in_a_batch_too() -> None:
    big = CODEC.encode("FeatureEvent", _event(1, 200))
    codec = Codec(
        max_record_bytes=len(big) - 1
    )  # not the shared default codec: other tests rely on its limit
    good, bad = codec.encode("FeatureEvent", _event(2, 3)), big
    out = codec.decode_many("FeatureEvent", [good, bad, good], topic=TOPIC)
    assert out[0] == out[2] == codec.decode("FeatureEvent", good)
    assert isinstance(out[1], SchemaError) and "exceeds the limit" in str(out[1])
