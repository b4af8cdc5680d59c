"""The one report generator: ``driftline replay --report`` and ``driftline demo`` write their pages with it.

- :mod:`streams.reporting.page`: the self-contained HTML page (KPI tiles, tables, PNGs embedded as base64)
- :mod:`streams.reporting.plots`: the PNGs (accuracy with drifts, alarms, releases and the plain learner; throughput
  and latency; label delay; backlog)
- :mod:`streams.reporting.replay`, :mod:`streams.reporting.demo`: what each command's report shows
"""
