#!/bin/bash
# Helper flake42 (session 42): run test files N times each on one's own stack, a line per run in $LOGS/summary.txt
# and every failing run's log kept as $LOGS/FAIL.<file>.<run>.log.
# Usage: KAFKA=127.0.0.1:14092 REDIS=redis://127.0.0.1:14379 STATE=/tmp/flake42-state \
#        docs/experiments/flake42_repeat.sh 5 tests/test_trainer_group.py tests/test_models_many.py
set -u
cd "$(dirname "$0")/../.."
LOGS=${LOGS:-/tmp/flake42-logs}
mkdir -p "$LOGS"
export PYTHONPATH=$PWD DRIFTLINE_KAFKA_BOOTSTRAP=$KAFKA DRIFTLINE_REDIS_URL=$REDIS/0 DRIFTLINE_STATE_DIR=$STATE \
    DRIFTLINE_TEST_KAFKA=$KAFKA DRIFTLINE_TEST_REDIS=$REDIS/15
N=$1
shift
for f in "$@"; do
    b=$(basename "$f" .py)
    for i in $(seq 1 "$N"); do
        s=$(date +%s)
        nice -n 5 /work/main/.venv/bin/python -m pytest -q -p no:cacheprovider "$f" >"$LOGS/$b.$i.log" 2>&1
        rc=$?
        echo "$(date -u +%H:%M:%S) $f run $i rc=$rc $(($(date +%s) - s))s load=$(cut -d' ' -f1 /proc/loadavg)" \
            "$(tail -1 "$LOGS/$b.$i.log")" >>"$LOGS/summary.txt"
        [ $rc -ne 0 ] && cp "$LOGS/$b.$i.log" "$LOGS/FAIL.$b.$i.log"
    done
done
