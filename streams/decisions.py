"""A release's guard decision in one shape for every ``--json`` view (``models list|show|diff``, ``status``).

The signed ``decision`` field of a ModelRelease is text: the guard's decision as a JSON object (``outcome``,
``reason``, ``text``, ``evidence``, ...), empty on a release without one (the first), and in older registry
records sometimes plain words (``"rollback: v3 worse ..."``). Readers get an object in every case: the guard's
object as recorded, ``{"text": <the words>}`` for plain text (the guard's own objects carry their words under
``text`` too), and ``{}`` for none.
"""

from __future__ import annotations

import json
from typing import Any


def decision_object(raw: Any) -> dict[str, Any]:
    """``raw`` (a release's ``decision`` field) as an object.

    >>> decision_object('{"outcome": "promote", "text": "better"}')["outcome"]
    'promote'
    >>> decision_object("rollback: v3 worse")
    {'text': 'rollback: v3 worse'}
    >>> decision_object("")
    {}
    """
    if isinstance(raw, dict):
        return raw
    if raw is None or raw == "":
        return {}
    text = raw if isinstance(raw, str) else str(raw)
    try:
        value = json.loads(text)
    except ValueError:
        return {"text": text}
    # JSON that is not an object ('42', '"x"', '[1]') is words to a reader, not a decision's fields.
    return value if isinstance(value, dict) else {"text": text}
