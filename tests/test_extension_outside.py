"""Issue 14's extension points, used the way the README's "Extending" section says, from outside the package: a
module of one's own registers a drift detector and a learner, then runs driftline's CLI in the same process (a
launcher script; ``driftline`` itself imports nothing of the user's). Replay, so no broker: the same learners,
monitors and guard as the workers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

MODULE = '''
from river import linear_model, preprocessing


class EveryN:
    """Alarms on every n-th value: a detector whose alarms a test can predict."""

    def __init__(self, n=700):
        self.n, self.seen, self.drift_detected = n, 0, False

    def update(self, value):
        self.seen += 1
        self.drift_detected = self.seen % self.n == 0


class MyLR:
    """A learner of one's own: any object with learn_one, predict_one and predict_proba_one."""

    def __init__(self):
        self.model = preprocessing.StandardScaler() | linear_model.LogisticRegression()

    def learn_one(self, x, y):
        self.model.learn_one(x, y)

    def predict_one(self, x):
        return self.model.predict_one(x)

    def predict_proba_one(self, x):
        return self.model.predict_proba_one(x)


def build(params, task, seed):
    return MyLR()
'''

LAUNCHER = """
import sys

import mine
from learners.detectors import register_detector
from learners.pickle_allow import ALLOWED, STATE_ONLY
from learners.specs import KINDS

register_detector("every_n", mine.EveryN)
KINDS["my_lr"] = (mine.build, ("classification",))
ALLOWED[("mine", "MyLR")] = "plain attributes, no __reduce__ or __setstate__ of its own"
STATE_ONLY[("mine", "EveryN")] = "plain attributes, no __reduce__ or __setstate__ of its own"

from streams.cli import main

sys.exit(main(sys.argv[1:]))
"""


def test_a_detector_and_a_learner_of_ones_own_run_in_replay(tmp_path: Path) -> None:
    (tmp_path / "mine.py").write_text(MODULE)
    (tmp_path / "launch.py").write_text(LAUNCHER)
    config = tmp_path / "config.yaml"
    config.write_text(
        "model:\n  learner: {name: my_lr}\n"
        "drift:\n  error_detector: every_n\n  error_detector_params: {n: 700}\n  sentinel: false\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("DRIFTLINE")}
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), str(Path(__file__).resolve().parents[1])])
    cmd = [sys.executable, str(tmp_path / "launch.py"), "--config", str(config)]
    proc = subprocess.run(
        [*cmd, "replay", "--stream", "sea-stationary", "--n", "1500", "--json"],
        capture_output=True, text=True, env=env, timeout=300, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["learner"] == "my_lr" and out["n"] == 1500
    assert out["accuracy"] > 0.6  # the learner learned (sea-stationary: a linear concept)
    assert out["alarms"] and all((i + 1) % 700 == 0 for i in out["alarms"]), out["alarms"]

    # A detector class a trainer's checkpoint could not restore (not in STATE_ONLY) is refused at start, saying so.
    (tmp_path / "launch.py").write_text(LAUNCHER.replace("STATE_ONLY[", "dict()["))
    unlisted = subprocess.run(
        [*cmd, "replay", "--stream", "sea-stationary", "--n", "300", "--json"],
        capture_output=True, text=True, env=env, timeout=300, check=False,
    )  # fmt: skip
    assert unlisted.returncode == 2, unlisted.stderr
    assert (
        "drift.error_detector: a trainer restarting from its checkpoint could not restore every_n"
        in unlisted.stderr
    )
    assert "mine.EveryN is not allowed" in unlisted.stderr and "STATE_ONLY" in unlisted.stderr

    # Without the launcher the same file names a learner driftline does not know: refused, naming the setting.
    plain = subprocess.run(
        [sys.executable, "-m", "streams.cli", "config", "validate", str(config)],
        capture_output=True, text=True, env=env, timeout=60, check=False,
    )  # fmt: skip
    assert plain.returncode == 2
    assert "model.learner: unknown learner 'my_lr'" in plain.stderr + plain.stdout
