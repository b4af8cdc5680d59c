"""The HTML page of every driftline report: a title, KPI tiles, then sections of tables and PNGs.

The PNGs are embedded as base64 and there is no script or remote resource, so ``report.html`` opens offline and
can be mailed on its own. Every record text is escaped: releases and audit entries carry free text.

>>> fmt(0.81234), fmt(12345), fmt({"b": 2, "a": None}), fmt([1, 2])
('0.8123', '12,345', 'a: -, b: 2', '[1, 2]')
"""

from __future__ import annotations

import base64
import html
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["fmt", "grid_table", "img", "kv_table", "write_html"]

CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2rem auto;max-width:1180px;color:#222;
padding:0 1rem}
h1{margin-bottom:.2rem}h2{margin-top:2rem;border-bottom:1px solid #ddd;padding-bottom:.2rem}
.muted{color:#777}.kpis{display:flex;gap:1rem;flex-wrap:wrap;margin:1rem 0}
.kpi{background:#f4f7fb;border-radius:8px;padding:.7rem 1rem;min-width:130px}
.kpi b{display:block;font-size:1.5rem;color:#1f4e79}.kpi span{color:#555;font-size:.85rem}
table{border-collapse:collapse;margin:.5rem 0}th,td{padding:.3rem .8rem;text-align:left;vertical-align:top}
table.summary th{color:#555;font-weight:normal;width:16rem}table.summary tr:nth-child(odd){background:#fafafa}
table.grid{width:100%}table.grid thead th{background:#eef2f7}table.grid td,table.grid th{border-bottom:1px solid #eee}
figure{margin:1rem 0}img{max-width:100%;border:1px solid #eee;border-radius:4px}
"""
MAX_CELL = 400  # a replay summary holds every alarm index: a cell is cut rather than a page of numbers


def fmt(value: Any) -> str:
    """One value as a table cell shows it: ``-`` for none, thousands separators, 4 significant digits."""
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 10 else f"{value:,.1f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    if isinstance(value, dict):
        return ", ".join(f"{k}: {fmt(v)}" for k, v in sorted(value.items())) or "-"
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= MAX_CELL else text[:MAX_CELL] + "..."


def img(path: Path, alt: str) -> str:
    """A PNG file as an inline ``<figure>``."""
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<figure><img alt="{html.escape(alt)}" src="data:image/png;base64,{data}"/></figure>'


def kv_table(pairs: Sequence[tuple[str, Any]]) -> str:
    """A two-column name/value table."""
    rows = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(fmt(v))}</td></tr>" for k, v in pairs)
    return f"<table class='summary'>{rows}</table>"


def grid_table(head: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A table with a header row; ``none`` when there are no rows."""
    if not rows:
        return '<p class="muted">none</p>'
    th = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(fmt(c))}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table class='grid'><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>"


def write_html(
    path: Path,
    title: str,
    sections: Sequence[tuple[str, str]],
    *,
    subtitle: str = "",
    kpis: Sequence[tuple[str, str]] = (),
) -> Path:
    """Write the page: ``title``, ``subtitle`` (HTML), ``kpis`` as ``(label, value)`` tiles, and each section as
    ``(heading, body HTML)``. The bodies are trusted HTML built with :func:`img` and the table helpers."""
    tiles = "".join(
        f"<div class='kpi'><b>{html.escape(v)}</b><span>{html.escape(k)}</span></div>" for k, v in kpis
    )
    body = "\n".join(f"<h2>{html.escape(h)}</h2>\n{part}" for h, part in sections)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<meta name="viewport" content="width=device-width, initial-scale=1"><style>{CSS}</style></head>
<body>
<h1>{html.escape(title)}</h1>
<p class="muted">{subtitle}</p>
<div class="kpis">{tiles}</div>
{body}
</body></html>
""",
        encoding="utf-8",
    )
    return path
