#!/bin/bash
# Session 14: replay streams with --out on a tree (TREE) and keep predictions and summaries under /tmp/vocab;
# compare two trees' files with cmp (streams that never reach the vocabulary bounds must be byte-identical).
# usage: preds.sh TREE TAG  -> /tmp/vocab/pred-TAG-*.jsonl and summaries
T=$1; TAG=$2; D=/work/shared/data
cd $T
run() { name=$1; shift; /usr/bin/time -f "%e s %M KB" nice -n 5 env PYTHONPATH=$T /work/main/.venv/bin/python -m streams.cli replay "$@" --json --out /tmp/vocab/pred-$TAG-$name.jsonl > /tmp/vocab/sum-$TAG-$name.json 2> /tmp/vocab/time-$TAG-$name.txt; }
run weather --file $D/weather.csv --label-col target --delay 50
run elec --file $D/elec.csv --label-col class --delay 50
run agrawal --stream agrawal-abrupt --n 20000 --delay 50
run city --file /tmp/vocab/city-20000.csv --label-col y --delay 50
run cityLR --file /tmp/vocab/city-20000.csv --label-col y --delay 50 --learner logistic_regression
