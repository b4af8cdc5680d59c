"""The web console: ``driftline console`` serves pages and a JSON API about one deployment (one topic prefix).

>>> console_url("127.0.0.1", 8765)
'http://127.0.0.1:8765/'
"""

from streams.console.server import build_app, console_url

__all__ = ["build_app", "console_url"]
