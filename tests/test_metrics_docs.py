"""docs/metrics.md is generated from METRIC_DOCS and must match it."""

from __future__ import annotations

from pathlib import Path

from streams.metrics import METRIC_DOCS, render_metrics_markdown

DOCS = Path(__file__).resolve().parents[1] / "docs" / "metrics.md"


def test_committed_docs_match_metric_docs() -> None:
    assert DOCS.read_text() == render_metrics_markdown(), (
        "docs/metrics.md is stale: run `python -m streams.metrics > docs/metrics.md`"
    )


def test_docs_list_every_family_with_its_labels() -> None:
    text = render_metrics_markdown()
    for doc in METRIC_DOCS:
        row = next(line for line in text.splitlines() if line.startswith(f"| `{doc.name}` |"))
        for label in doc.labels:
            assert f"`{label}`" in row, (doc.name, label)


def test_readme_lists_every_family_with_its_labels() -> None:
    """The contract: every metric is "listed in the README with their labels" (not only in docs/metrics.md)."""
    readme = (DOCS.parents[1] / "README.md").read_text()
    section = readme.split("\n## Metrics\n", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        if line.startswith("| `driftline_"):
            names, labels = line.split("|")[1:3]
            for name in names.replace("`", "").split(","):
                rows[name.strip()] = labels
    for doc in METRIC_DOCS:
        assert doc.name in rows, f"README's metrics table lacks {doc.name}"
        for label in doc.labels:
            assert f"`{label}`" in rows[doc.name], (doc.name, label)
