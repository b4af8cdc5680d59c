"""driftline: event-streaming continuous learning on Kafka, Faust and River.

The code lives in four top-level packages that follow the data flow:
``connectors`` (Kafka, Redis, files) -> ``schemas`` (bytes <-> records) -> ``streams`` (Faust wiring, CLI)
-> ``learners`` (all learning logic, pure Python). This package holds what they share: the version and the errors.
"""

from driftline.errors import (
    ArtifactError,
    ConfigError,
    DriftlineError,
    LearnerError,
    SchemaError,
    SecurityError,
    StackError,
)

__version__ = "0.1.0"

__all__ = [
    "ArtifactError",
    "ConfigError",
    "DriftlineError",
    "LearnerError",
    "SchemaError",
    "SecurityError",
    "StackError",
    "__version__",
]
