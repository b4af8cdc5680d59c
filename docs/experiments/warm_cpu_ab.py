"""Interleaved A/B CPU seconds (user + sys of the child) of ``driftline replay`` on two trees, best of rounds
(session 17, helper warmpool). The order alternates each round so neither tree always runs first.

    python docs/experiments/warm_cpu_ab.py BASE_TREE BRANCH_TREE DIR_WITH_CSVS [ROUNDS]

Streams: reg_neg_s0 (regression) and agrawal38_s0 (classification), session 16 (lead)'s outsider CSVs, delay 50.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import tempfile

STREAMS = {"reg_neg_s0": ["--task", "regression"], "agrawal38_s0": []}


def main(base: str, branch: str, csvs: str, rounds: int) -> None:
    trees = [("base", base), ("branch", branch)]
    runs: dict[tuple[str, str], list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(rounds):
            for name, extra in STREAMS.items():
                for tag, tree in trees if r % 2 == 0 else trees[::-1]:
                    before = resource.getrusage(resource.RUSAGE_CHILDREN)
                    cmd = ["nice", "-n", "5", f"{sys.prefix}/bin/driftline", "replay", "--file",
                           f"{csvs}/{name}.csv", "--label-col", "y", "--delay", "50", "--json",
                           "--out", f"{tmp}/{tag}.jsonl", *extra]  # fmt: skip
                    env = {**os.environ, "PYTHONPATH": tree}
                    subprocess.run(cmd, cwd=tree, env=env, check=True, capture_output=True)
                    after = resource.getrusage(resource.RUSAGE_CHILDREN)
                    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
                    print(f"round {r} {name} {tag} {cpu:.2f}s", flush=True)
                    runs.setdefault((name, tag), []).append(cpu)
    for (name, tag), v in sorted(runs.items()):
        print(f"{name} {tag}: best {min(v):.2f}s, all {' '.join(f'{x:.2f}' for x in v)}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]) if len(sys.argv) > 4 else 3)
