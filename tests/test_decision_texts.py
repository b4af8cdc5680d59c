"""``Decision.texts()`` is exactly ``to_json()``, its parse and the parse's canonical JSON (session 46).

The trainer signs ``to_json()`` in each release's header and audits the parsed decision with its canonical text
(``driftline.audit_chain``): any difference would change a published byte. Checked against the encode-parse-encode
path on every kind of value a decision can hold, including those that take that path themselves.
"""

from __future__ import annotations

import json
import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from driftline.audit_chain import canonical_text
from learners.guard import Decision, _texts

_SCALARS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.booleans(),
    st.none(),
    st.text(),
)
_KEYS = st.text()


def _reference(d: Decision) -> tuple[str, object, str]:
    text = json.dumps(
        {
            "outcome": d.outcome,
            "reason": d.reason,
            "candidate": d.candidate,
            "evidence": {k: v for k, v in d.evidence.items() if _finite(v)},
            "checks": d.checks,
            "text": d.text,
            "index": d.index,
        },
        sort_keys=True,
    )
    parsed = json.loads(text)
    return text, parsed, canonical_text(parsed)


def _finite(v: object) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)  # type: ignore[arg-type]


def _same(a: object, b: object) -> bool:
    """Equal with the same types and key order at every level (-0.0 is not 0.0)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        assert isinstance(b, dict)
        return list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, float):
        assert isinstance(b, float)
        return repr(a) == repr(b)
    return a == b


def _check(d: Decision) -> None:
    want = _reference(d)
    got = d.texts()
    assert got[0] == want[0] == d.to_json()
    assert _same(got[1], want[1])
    assert got[2] == want[2]


@settings(max_examples=300, deadline=None)
@given(
    outcome=st.text(),
    evidence=st.dictionaries(_KEYS, _SCALARS, max_size=15),
    checks=st.dictionaries(_KEYS, st.one_of(st.booleans(), st.text(), _SCALARS), max_size=8),
    text=st.text(),
    index=st.one_of(st.none(), st.integers(min_value=-(2**63), max_value=2**63)),
)
def test_texts_are_the_json_round_trip(
    outcome: str, evidence: dict, checks: dict, text: str, index: int | None
) -> None:
    _check(Decision(outcome, "incremental", "champion", evidence, checks, text, index))


def test_a_typical_release_decision_takes_the_one_pass() -> None:
    d = Decision(
        "promote",
        "incremental",
        "champion",
        {"n": 57.0, "log_e_value": 0.0035806682378701875, "margin": 0.03, "nan": math.nan, "count": 3},
        {"statistical_test": True, "latency": "not required", "segments": False},
        'promote champion: d\u00e9j\u00e0 vu \u2014 "quoted", 0 vs 0',
        12,
    )
    assert _texts(d._fields()) is not None  # the fast path, not the fallback
    _check(d)


def test_values_that_do_not_round_trip_take_the_json_path() -> None:
    for evidence, checks in (
        ({"x": np.float64(0.1)}, {}),  # a float subclass: parsed back as a plain float
        ({}, {"nan": math.nan}),  # a check that is not finite: NaN in the text, parsed back as NaN
        ({}, {1: True}),  # a key that is not a str: written as "1"
    ):
        d = Decision("hold", "incremental", "champion", evidence, checks, "t", None)  # type: ignore[arg-type]
        assert _texts(d._fields()) is None
        text, parsed, canonical = d.texts()
        assert text == d.to_json()
        assert _same(parsed, json.loads(text))
        assert canonical == canonical_text(json.loads(text))
