"""``driftline demo``: run the real pipeline on a drifting stream, watch it live, write a report.

- :mod:`streams.demo.stream`: the built-in data (SEA with an abrupt and a gradual drift)
- :mod:`streams.demo.runner`: stack, workers, producer, monitoring, clean stop
- :mod:`streams.demo.probe`: scraping the workers' metrics into samples
- :mod:`streams.demo.live`: the live terminal view
- :mod:`streams.demo.collect`, :mod:`streams.demo.baseline`: the run's records and the plain learner on the same
  events, for the report (:mod:`streams.reporting.demo`)
"""
