#!/usr/bin/env bash
# Partitions added to training, control and changelog under running workers (helper broker35, session 35).
# From outside: `driftline topics create`, one `driftline worker --role all`, `driftline produce synthetic`, then
# confluent-kafka's AdminClient.create_partitions (what `kafka-topics --alter --partitions` does), more events,
# and what the worker did: its exit code and log, and the dead letters.
#   TREE=/path/to/tree KAFKA=127.0.0.1:15092 REDIS=redis://127.0.0.1:15379/0 docs/experiments/broker35_partitions.sh
set -u
TREE=${TREE:-$(cd "$(dirname "$0")/../.." && pwd)}
PY=${PY:-/work/main/.venv/bin/python}
OUT=${OUT:-/tmp/broker35-runs/partitions-$(date +%s)}
mkdir -p "$OUT"
export PYTHONPATH=$TREE DRIFTLINE_KAFKA_BOOTSTRAP=${KAFKA:-127.0.0.1:15092} DRIFTLINE_REDIS_URL=${REDIS:-redis://127.0.0.1:15379/0}
export DRIFTLINE_STATE_DIR=${STATE:-/tmp/broker35-state} DRIFTLINE_SIGNING_KEY=$(printf 'b35%.0s' {1..16})
export DRIFTLINE_TOPIC_PREFIX=b35p.$(date +%s).
cd "$TREE"
dl() { "$PY" -m driftline "$@"; }
dl topics create >/dev/null
"$PY" -m driftline worker --role all --metrics-port ${METRICS:-15610} >"$OUT/worker.log" 2>&1 &
WORKER=$!
sleep 20
dl produce synthetic --stream sea-drift --events 2000 --rate 400 --label-delay 100 --seed 1 --id-prefix a- >/dev/null
sleep 10
"$PY" - <<'PY'
import os
from confluent_kafka.admin import AdminClient, NewPartitions
p = os.environ["DRIFTLINE_TOPIC_PREFIX"]
admin = AdminClient({"bootstrap.servers": os.environ["DRIFTLINE_KAFKA_BOOTSTRAP"]})
fs = admin.create_partitions([NewPartitions(p + t, 8) for t in ("training", "control", "changelog")])
for t, f in fs.items():
    f.result(30)
    print("partitions of", t, "-> 8")
PY
dl produce synthetic --stream sea-drift --events 1000 --rate 400 --label-delay 100 --seed 2 --id-prefix b- >/dev/null
sleep 40
# librdkafka refreshes topic metadata every 5 minutes: a running joiner keeps the old count until then. A restart
# (a deploy, a crash) sees the new one at once.
if kill -0 $WORKER 2>/dev/null; then echo "worker still running 40 s after: restarted"; kill $WORKER; wait $WORKER
else wait $WORKER; echo "worker exited $? by itself: restarted"; fi
"$PY" -m driftline worker --role all --metrics-port ${METRICS:-15610} >"$OUT/worker2.log" 2>&1 &
WORKER=$!
sleep 20
dl produce synthetic --stream sea-drift --events 1000 --rate 400 --label-delay 100 --seed 3 --id-prefix c- >/dev/null
sleep 40
if kill -0 $WORKER 2>/dev/null; then echo "restarted worker still running"; kill $WORKER; wait $WORKER; else wait $WORKER; echo "restarted worker exited $?"; fi
echo "dead letters: $(dl tail deadletter -n 100000 --json 2>/dev/null | wc -l)"
dl tail deadletter -n 1 --json 2>/dev/null | cut -c1-400
grep -h "partitions were added\|not where its name hashes" "$OUT"/worker*.log | cut -c1-600 | head -2
dl models show --json 2>/dev/null | "$PY" -c "import json,sys; d=json.load(sys.stdin); print('labels_learned', d.get('labels_learned'))" 2>/dev/null || echo "models show: no answer"
echo "prefix $DRIFTLINE_TOPIC_PREFIX, logs $OUT/worker.log, $OUT/worker2.log"
