"""``models list --json``: ``partition`` means one thing in every row, the model's training partition (the current
row's, with owner and lag); where an unverified record sits on the ``models`` topic is ``models_partition`` and
``offset`` (it was ``partition`` there, the training partition on the current row) (fixes33, item 7)."""

from __future__ import annotations

from streams.commands.models_print import _offsets
from streams.model_registry import unverified_row


def test_an_unverified_row_says_where_it_is_on_models_under_models_partition() -> None:
    release = {"model": "default", "version": 9, "metrics": {}}
    row = unverified_row(release, "signature", "signature mismatch", (2, 17))
    assert (row["models_partition"], row["offset"], row["partition"]) == (2, 17, None)
    unknown = unverified_row(release, "conflict", "two records")
    assert (unknown["models_partition"], unknown["offset"], unknown["partition"]) == (None, None, None)


def test_the_summary_of_unverified_offsets_reads_models_partition() -> None:
    release = {"model": "default", "version": 9, "metrics": {}}
    rows = [unverified_row(release, "signature", "x", where) for where in ((0, 5), (0, 9), (1, 3))]
    assert _offsets(rows) == " at offsets p0 5-9, p1 3-3"
