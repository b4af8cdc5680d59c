"""What the demo shows while it runs: a rich ``Live`` dashboard, or one progress line every few seconds.

Both are ``on_sample(run, sample)`` callbacks for :meth:`streams.demo.runner.DemoRun.run`.
"""

from __future__ import annotations

import sys
import time
from collections import deque
from typing import Any, TextIO

from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from streams.demo.probe import Sample
from streams.demo.runner import DemoRun, read_decisions

__all__ = ["LiveView", "ProgressLines"]

RATE_WINDOW_S = 2.0


class _ScoreRate:
    """Events scored per second over the last ``RATE_WINDOW_S`` seconds of samples."""

    def __init__(self) -> None:
        self._history: deque[Sample] = deque()

    def __call__(self, sample: Sample) -> float:
        self._history.append(sample)
        while len(self._history) > 2 and sample.t - self._history[0].t > RATE_WINDOW_S:
            self._history.popleft()
        first = self._history[0]
        dt = sample.t - first.t
        return (sample.scored - first.scored) / dt if dt > 0 else 0.0


def _acc(value: float | None) -> Text:
    if value is None:
        return Text("-", style="dim")
    style = "green" if value >= 0.85 else "yellow" if value >= 0.7 else "red"
    return Text(f"{value:.1%}", style=f"bold {style}")


class LiveView:
    """A rich dashboard refreshed on every sample (the runner samples about twice a second)."""

    def __init__(self, total: int, console: Console | None = None) -> None:
        self.total = total
        self.console = console or Console(stderr=True)
        self._rate = _ScoreRate()
        self._eps = 0.0
        self._live: Live | None = None
        self._decisions: list[dict[str, Any]] = []
        self._next_audit = 0.0

    def __enter__(self) -> LiveView:
        self._live = Live(
            Text("starting workers..."), console=self.console, refresh_per_second=4, transient=False
        )
        self._live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._live is not None:
            self._live.__exit__(None, None, None)

    def __call__(self, run: DemoRun, sample: Sample) -> None:
        self._eps = self._rate(sample)
        if time.monotonic() >= self._next_audit:
            self._decisions = read_decisions(run.result.audit_path, last=5)
            self._next_audit = time.monotonic() + 1.0
        if self._live is not None:
            self._live.update(self.render(run, sample))

    def render(self, run: DemoRun, s: Sample) -> Group:
        """The dashboard for one sample."""
        eps = self._eps
        head = Table.grid(expand=True, padding=(0, 2))
        for _ in range(4):
            head.add_column()
        head.add_row(
            Text.assemble(("events/s ", "dim"), (f"{eps:,.0f}", "bold cyan")),
            Text.assemble(("consumer lag ", "dim"), (f"{s.lag:,}", "bold red" if s.lag > 500 else "bold")),
            Text.assemble(("served accuracy ", "dim"), _acc(s.accuracy)),
            Text.assemble(("serving ", "dim"), (f"v{s.served_version}", "bold magenta")),
        )
        head.add_row(
            Text.assemble(
                ("drift alarms ", "dim"), (str(s.total_alarms), "bold yellow" if s.total_alarms else "")
            ),
            Text.assemble(("pending labels ", "dim"), (f"{s.pending_joins:,}", "bold")),
            Text.assemble(
                ("dead letters ", "dim"), (str(s.deadletters), "bold red" if s.deadletters else "")
            ),
            Text.assemble(
                ("workers ", "dim"), (f"{s.workers_up}/3", "bold green" if s.workers_up == 3 else "red")
            ),
        )
        flow = Table(box=None, expand=True, show_header=True, header_style="dim")
        for col in ("produced", "scored", "labels in", "joined", "learned", "releases", "alarms by signal"):
            flow.add_column(col, justify="right" if col != "alarms by signal" else "left")
        # "15 (12 incremental, 2 challenger)": the total first, so a narrow terminal still shows it.
        detail = ", ".join(
            f"{v} {k}" for k, v in sorted(s.releases.items(), key=lambda kv: -kv[1]) if k != "initial"
        )
        releases = f"{sum(s.releases.values())}" + (f" ({detail})" if detail else "")
        alarms = ", ".join(f"{k} {v}" for k, v in sorted(s.alarms.items())) or "-"
        flow.add_row(
            f"{s.produced:,}", f"{s.scored:,}", f"{s.labels_in:,}", f"{s.joined:,}", f"{s.learned:,}",
            releases, alarms,
        )  # fmt: skip
        guard = Table(box=None, expand=True, show_header=True, header_style="dim")
        for col in ("at", "outcome", "reason", "why"):
            guard.add_column(col, overflow="ellipsis", no_wrap=True, ratio=6 if col == "why" else 1)
        for d in self._decisions[::-1]:
            outcome = str(d.get("outcome", ""))
            style = {"promote": "green", "reject": "red", "rollback": "red", "hold": "yellow"}.get(
                outcome, ""
            )
            guard.add_row(
                str(d.get("index", "")), Text(outcome, style=style), str(d.get("reason", "")),
                str(d.get("text", ""))[:200],
            )  # fmt: skip
        if not self._decisions:
            guard.add_row("", Text("no guard decision yet", style="dim"), "", "")
        bar = ProgressBar(total=max(self.total, 1), completed=min(s.produced, self.total), width=None)
        title = f"driftline demo - {run.phase} - {s.produced:,}/{self.total:,} events - {s.t:,.0f}s"
        return Group(
            Panel(Group(head, Text(""), bar), title=title, title_align="left", border_style="blue"),
            Panel(flow, title="pipeline", title_align="left", border_style="dim"),
            Panel(guard, title="guard decisions (latest first)", title_align="left", border_style="dim"),
            Text(f"topics {run.prefix}*   logs {run.run_dir / 'logs'}   Ctrl-C stops cleanly", style="dim"),
        )


class ProgressLines:
    """``--no-live``: one short line every ``every_s`` seconds (and the first and last one)."""

    def __init__(self, total: int, every_s: float = 5.0, stream: TextIO | None = None) -> None:
        self.total = total
        self.every_s = every_s
        self.stream = stream or sys.stderr
        self._rate = _ScoreRate()
        self._next = 0.0

    def __enter__(self) -> ProgressLines:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def __call__(self, run: DemoRun, s: Sample) -> None:
        eps = self._rate(s)
        if s.t < self._next:
            return
        self._next = s.t + self.every_s
        acc = f"{s.accuracy:.3f}" if s.accuracy is not None else "-"
        print(
            f"[{s.t:6.1f}s] {run.phase}: produced {s.produced}/{self.total} scored {s.scored} "
            f"learned {s.learned} | {eps:.0f} ev/s lag {s.lag} | v{s.served_version} "
            f"acc {acc} | alarms {s.total_alarms} pending {s.pending_joins} deadletters {s.deadletters}",
            file=self.stream,
            flush=True,
        )
