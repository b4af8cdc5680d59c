"""The learning core: learners, prequential evaluation, drift monitors, the guard, the model lifecycle and replay.

Pure Python (River, scikit-learn, SciPy): no Kafka and no Redis. Public names are re-exported lazily so that
importing ``driftline.config`` (as the settings loader does) does not pay for importing River.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "LearnerSpec": "driftline.config",
    "DriftConfig": "driftline.config",
    "GuardConfig": "driftline.config",
    "Learner": "learners.specs",
    "build_learner": "learners.specs",
    "KINDS": "learners.specs",
    "Evaluator": "learners.evaluation",
    "DriftSignal": "learners.drift",
    "ErrorDriftMonitor": "learners.drift",
    "LossDriftMonitor": "learners.drift",
    "FeatureDriftMonitor": "learners.drift",
    "DETECTORS": "learners.detectors",
    "register_detector": "learners.detectors",
    "Decision": "learners.guard",
    "PairedEvidence": "learners.guard",
    "Probation": "learners.guard",
    "judge": "learners.guard",
    "ModelLifecycle": "learners.lifecycle",
    "Release": "learners.lifecycle",
    "replay": "learners.replay",
    "read_rows": "learners.replay",
    "ReplayResult": "learners.replay",
    "synthetic_stream": "learners.synthetic",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'learners' has no attribute {name!r}")
