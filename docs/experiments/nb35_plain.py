"""Plain ``hoeffding_tree`` with ``leaf_prediction: nb``: prequential accuracy on session 32's classification
streams at seeds 71 and 83 (session 35, helper fixes35). Run it with the tree to measure on the path, e.g.
``PYTHONPATH=TREE python docs/experiments/nb35_plain.py`` from TREE (base and branch, one after the other: the
stream files are written once to /tmp and then read)."""

from __future__ import annotations

import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).parent))
import gen32_streams as G

import learners.specs
from driftline.config import LearnerSpec
from learners.replay import read_rows
from learners.specs import build_learner

STREAMS = [
    "agrawal_9_4_early",
    "sea_3_2_late",
    "stagger_three",
    "mixed_back",
    "imbalanced_5pc",
    "messy_3k",
    "waveform_noise_swap",
    "rbf_12class",
]


def main() -> None:
    print(learners.specs.__file__, flush=True)
    for name in STREAMS:
        for seed in (71, 83):
            path = pathlib.Path(f"/tmp/nb35-{name}-{seed}.csv")
            if not path.exists():
                G.write_csv(getattr(G, name)(seed)[0], path)
            rows = list(read_rows(str(path), "y"))
            model = build_learner(
                LearnerSpec("hoeffding_tree", {"leaf_prediction": "nb"}), "classification", 0
            )
            right = 0
            for _, _, x, y in rows:
                right += model.predict_one(x) == y
                model.learn_one(x, y)
            print(name, seed, len(rows), round(right / len(rows), 4), flush=True)


if __name__ == "__main__":
    main()
