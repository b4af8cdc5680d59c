"""driftline benchmarks: ``driftline bench`` (see BENCHMARKS.md)."""
