"""The demo's plain baseline: what a learner with no guard would have answered on the same events.

The guard tax is what serving guarded snapshots costs (or gains) against a learner that learns every label the moment
it arrives. The demo's events are deterministic (the built-in stream for a seed, or the same file), so they are
generated again here, learned with the same label delay the producer used (a label ``label_delay`` events after its
event), and lined up with the training examples by event id.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from connectors.sources import Event
from driftline.config import LearnerSpec
from learners.replay import plain_predictions
from learners.specs import Learner
from streams.demo.runner import DemoRun

__all__ = ["demo_baseline", "plain_correct"]


def plain_correct(
    events: Iterable[Event],
    training: Sequence[dict[str, Any]],
    label_delay: int,
    spec: LearnerSpec,
    *,
    seed: int = 0,
) -> list[bool | None]:
    """Per training row (same order): did the plain learner predict its label? ``None`` for an event it never saw.

    The plain learner runs over the events in the order they were produced (a label reaches it ``label_delay``
    events late, as the producer published it), whichever order the rows were joined in.
    """
    events = list(events)
    learner = Learner(spec, "classification", seed)
    preds = plain_predictions(((e.features, e.label) for e in events), learner, label_delay)
    # Scored against the event's own label: the training row's label went through the wire format.
    by_id = {e.id: p == e.label for e, p in zip(events, preds, strict=True)}
    return [by_id.get(r["id"]) for r in training]


def demo_baseline(run: DemoRun, training: Sequence[dict[str, Any]]) -> tuple[list[bool | None], str] | None:
    """The served learner's kind, unguarded, on the run's events (:func:`plain_correct`) and its name; ``None``
    for a regression model (the demo's report is about accuracy)."""
    model = run.settings.model
    if model.task != "classification":
        return None
    o = run.options
    return plain_correct(
        run.events(), training, o.label_delay, model.learner, seed=o.seed
    ), model.learner.name
