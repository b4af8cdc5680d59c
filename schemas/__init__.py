"""The eight driftline records (``*.avsc``) and the codec that turns them into bytes and back."""

from schemas.codec import (
    DEFAULT_MAX_RECORD_BYTES,
    INPUT_TOPICS,
    MAGIC,
    RECORDS,
    TOPIC_RECORDS,
    Codec,
    default_codec,
    schema_fingerprint,
)

__all__ = [
    "DEFAULT_MAX_RECORD_BYTES",
    "INPUT_TOPICS",
    "MAGIC",
    "RECORDS",
    "TOPIC_RECORDS",
    "Codec",
    "default_codec",
    "schema_fingerprint",
]
