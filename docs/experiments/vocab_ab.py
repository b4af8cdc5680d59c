"""Session 14: what the bounded vocabulary costs a stream that never reaches it (run base and branch alternately).

20,000 rows of elec.csv, predict then learn each, through ``Learner`` ("slow") and through the trainer's shortcuts
``_Fast`` / ``_FastLearn`` ("fast"); prints seconds per variant as one JSON line.

    for t in BASE BRANCH; do (cd $t && PYTHONPATH=$t python docs/experiments/vocab_ab.py); done
"""

import json
import time

from driftline.config import LearnerSpec
from learners.features import clean_features
from learners.frozen_tree import forget_recorded
from learners.live_models import _Fast, _FastLearn
from learners.replay import read_rows
from learners.specs import build_learner

rows = [(clean_features(x), y) for _, _, x, y in read_rows("/work/shared/data/elec.csv", "class")][:20000]
out = {}
for name in ["logistic_regression", "auto"]:
    m = build_learner(LearnerSpec(name))
    t = time.perf_counter()
    for x, y in rows:
        m.predict_one(x, cleaned=True)
        m.learn_one(x, y, cleaned=True)
    out[name + ".slow"] = time.perf_counter() - t
    m = build_learner(LearnerSpec(name))
    f, fl = _Fast(), _FastLearn()
    t = time.perf_counter()
    for x, y in rows:
        forget_recorded()
        f.predict(m, x)
        fl.learn(m, x, y)
    out[name + ".fast"] = time.perf_counter() - t
print(json.dumps({k: round(v, 3) for k, v in out.items()}))
