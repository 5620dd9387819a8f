#!/usr/bin/env bash
# demo: cost: the cluster config per hour, the jobs above from accounting, a cohort plan, the report page
set -euo pipefail
: "${HPCTOOL_DEMO_DIR:=$HOME/hpctool-demo}"; mkdir -p "$HPCTOOL_DEMO_DIR"
echo "-- hpctool cost estimate cluster-configs/default.yaml"
hpctool cost estimate cluster-configs/default.yaml

echo
echo "-- hpctool cost jobs --since now-2hours --by queue   (sacct on the twin; requeued runs on their own line)"
hpctool cost jobs --since now-2hours --by queue

echo
echo "-- hpctool cost plan: 48 samples, align 2.5 h + call 1 h, 10 nodes, due in 24 h"
hpctool cost plan --samples 48 --step align=2.5 --step call=1 --deadline 24 --nodes 10 \
  --interruptions-per-hour 0.05

run=$(find "$HPCTOOL_DEMO_DIR" -maxdepth 2 -path "$HPCTOOL_DEMO_DIR/germline.*/twin" -type d -printf '%T@ %p\n' 2>/dev/null \
  | sort -rn | head -n 1 | cut -d' ' -f2-)
echo
if [[ -n $run ]]; then
  echo "-- hpctool cost jobs --run $run --by rule, and its report page"
  hpctool cost jobs --run "$run" --by rule
  hpctool report "$run"
else
  echo "-- hpctool report --since now-2hours (every job on the twin)"
  out=$(mktemp -d "$HPCTOOL_DEMO_DIR"/cost.XXXXXX)
  hpctool report --since now-2hours -o "$out/report.html"
fi
