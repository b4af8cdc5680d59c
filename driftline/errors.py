"""One root exception; each subclass also derives from the built-in it resembles."""


class DriftlineError(Exception):
    """Root of every error driftline raises on purpose."""


class ConfigError(DriftlineError, ValueError):
    """A setting is invalid; the message names the field and the value."""


class SchemaError(DriftlineError, ValueError):
    """A record cannot be decoded or validated; the message names topic, field and value."""


class LearnerError(DriftlineError, ValueError):
    """A learner spec is unknown or has bad parameters."""


class ArtifactError(DriftlineError, ValueError):
    """A model artifact cannot be built or loaded."""


class ArtifactTooLarge(ArtifactError):
    """A model artifact is over ``model.max_inline_bytes`` and no ``model.artifact_store`` is configured to carry it."""


class SecurityError(ArtifactError):
    """A model artifact failed verification (signature, digest, version or allow-list)."""


class StackError(DriftlineError, RuntimeError):
    """The local Kafka/Redis stack cannot be started, reached or stopped."""
