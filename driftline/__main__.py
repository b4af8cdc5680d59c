"""``python -m driftline``: the same command line as the ``driftline`` console script.

A leaf like ``streams/cli.py`` (the layer contracts in ``.importlinter`` let only this module import the CLI from
``driftline``): where the console script is not on ``PATH`` (a virtualenv not activated, a container's python), the
command still runs, as the package's name promises.
"""

from __future__ import annotations

import sys

from streams.cli import main

if __name__ == "__main__":
    sys.exit(main())
