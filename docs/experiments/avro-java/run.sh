#!/usr/bin/env bash
# The whole check against a running stack and worker (see README.md). Usage: run.sh WORKDIR
# Needs the DRIFTLINE_* environment of that deployment, PYTHONPATH at the checkout, and Java's jars in $JAVA_CP.
set -euo pipefail
W=${1:?usage: run.sh WORKDIR}
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../../.." && pwd)
PY=${PY:-python}
JAVA_CP=${JAVA_CP:-"$HERE/lib/*"}
mkdir -p "$W"
java_() { java -cp "$JAVA_CP" "$HERE/AvroWireCheck.java" "$@" 2> >(grep -v -e SLF4J -e '^Note:' >&2); }
fail=0
echo "== fingerprints (Java) vs driftline"
java_ fingerprints "$ROOT/schemas" > "$W/fingerprints.jsonl"
"$PY" - "$W/fingerprints.jsonl" "$ROOT/schemas" <<'PYEOF' || fail=1
import json, sys
from pathlib import Path
from fastavro import parse_schema
from fastavro.schema import to_parsing_canonical_form
from schemas.codec import schema_fingerprint
bad = 0
for line in open(sys.argv[1]):
    j = json.loads(line)
    raw = json.loads((Path(sys.argv[2]) / j["file"]).read_text())
    ok = schema_fingerprint(raw).hex() == j["fingerprint"] and to_parsing_canonical_form(parse_schema(raw)) == j["canonical"]
    bad += not ok
    print(("ok   " if ok else "FAIL ") + j["file"], j["fingerprint"])
sys.exit(bad > 0)
PYEOF
echo "== Java encodes, driftline decodes (offline)"
"$PY" "$HERE/wirecheck.py" cases "$W/cases.jsonl"
java_ encode "$ROOT/schemas" "$W/cases.jsonl" "$W/bins" > /dev/null
"$PY" "$HERE/wirecheck.py" offline "$W/cases.jsonl" "$W/bins" || fail=1
echo "== Java's records through the pipeline"
"$PY" "$HERE/wirecheck.py" publish "$W/cases.jsonl" "$W/bins" || fail=1
sleep "${SETTLE:-30}"
rm -rf "$W/dump"
"$PY" "$HERE/wirecheck.py" dump "$W/dump"
"$PY" "$HERE/wirecheck.py" verify "$W/cases.jsonl" "$W/dump" || fail=1
echo "== Java decodes every topic as driftline wrote it"
java_ decode "$ROOT/schemas" "$W/dump" "$W/java-decoded.jsonl"
"$PY" "$HERE/wirecheck.py" compare "$W/dump" "$W/java-decoded.jsonl" || fail=1
echo "== result: $([ $fail = 0 ] && echo all checks passed || echo SOME CHECKS FAILED)"
exit $fail
