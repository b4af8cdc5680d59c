"""driftline: event-streaming continuous learning on Kafka, Faust and River.

The code is in layers, bottom to top (checked by ``lint-imports`` against ``.importlinter``): ``driftline``
(this package: errors, version, settings, the learning core's config types, small shared helpers) ->
``schemas`` (bytes <-> records) and ``learners`` (all learning logic, pure Python) -> ``connectors`` (Kafka,
Redis and file clients) -> ``streams`` (the stages and their runtime) -> the CLI (``streams.commands``,
``streams.cli``) and ``bench``.
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
