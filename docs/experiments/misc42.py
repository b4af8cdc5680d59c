"""Session 42 (helper misc42): the cost of refusing a repeated Avro map key on the decode path.

Times ``default_codec().decode("FeatureEvent", ...)`` (what a scorer does per event) for a 20-feature event of
doubles (the learned-layout shortcut) and for one with a text feature (read entry by entry, where the new check
runs). Run it against two trees side by side in the same minutes:

    for t in /work/main /work/wt/misc42; do PYTHONPATH=$t /work/main/.venv/bin/python docs/experiments/misc42.py; done
"""

from __future__ import annotations

import timeit

import schemas
from schemas.codec import default_codec


def main() -> None:
    codec = default_codec()
    doubles = {f"x{i}": i / 7 for i in range(20)}
    mixed = {**doubles, "city": "Lyon"}
    for name, features in (
        ("20 doubles (shortcut)", doubles),
        ("20 doubles + 1 text (entry by entry)", mixed),
    ):
        data = codec.encode("FeatureEvent", {"id": "e1", "ts": 1, "features": features})
        codec.decode("FeatureEvent", data)  # the layout learned
        n = 20_000
        best = min(timeit.repeat(lambda d=data: codec.decode("FeatureEvent", d), number=n, repeat=5))
        print(
            f"{schemas.__file__.rsplit('/schemas/', 1)[0]}: {name}: {best / n * 1e6:.2f} us/decode (best of 5 x {n})"
        )
    # A scorer's batch: 500 events of 10 doubles through decode_many.
    values = [
        codec.encode(
            "FeatureEvent", {"id": f"e{i}", "ts": i, "features": {f"f{k}": i * k / 7 for k in range(10)}}
        )
        for i in range(500)
    ]
    codec.decode_many("FeatureEvent", values)
    best = min(timeit.repeat(lambda: codec.decode_many("FeatureEvent", values), number=40, repeat=5))
    print(
        f"{schemas.__file__.rsplit('/schemas/', 1)[0]}: decode_many of 500: {best / 40 / 500 * 1e6:.2f} us/event"
    )


if __name__ == "__main__":
    main()
