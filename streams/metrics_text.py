"""Reading Prometheus text exposition (what every worker serves on ``/metrics``): one parser for the demo's probe,
the benchmarks and the tests, on ``prometheus_client``'s own parser.
"""

from __future__ import annotations

from collections.abc import Mapping

from prometheus_client.parser import text_string_to_metric_families

__all__ = ["Families", "metric_value", "parse_metrics"]

# {metric sample name: [(labels, value), ...]}
Families = dict[str, list[tuple[dict[str, str], float]]]


def parse_metrics(text: str, into: Families | None = None, instance: str = "") -> Families:
    """Prometheus text exposition -> ``{sample name: [(labels, value)]}`` (appends to ``into`` if given).

    ``instance`` is added as a label, so series of different workers stay apart after merging.
    """
    out: Families = {} if into is None else into
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out.setdefault(s.name, []).append(({**s.labels, "instance": instance}, float(s.value)))
    return out


def metric_value(text: str, name: str, labels: Mapping[str, str] | None = None) -> float | None:
    """Sum of the samples called ``name`` whose labels include ``labels``; None when no sample matches.

    >>> text = 'm{model="a",stage="x"} 2\\nm{model="a",stage="y"} 3\\nm{model="b"} 7\\n'
    >>> metric_value(text, "m", {"model": "a"}), metric_value(text, "m", {"model": "c"})
    (5.0, None)
    """
    want = labels or {}
    found = [
        value
        for sample_labels, value in parse_metrics(text).get(name, [])
        if all(sample_labels.get(k) == v for k, v in want.items())
    ]
    return sum(found) if found else None
