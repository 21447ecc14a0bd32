#!/usr/bin/env bash
# Benchmark: on the demo world (no images), how long after a new week of transactions is appended does
# the new production week's final.csv appear under `hm-recsys ui` (dagster dev), with no other command?
# Usage: benchmarks/new_week_latency.sh [WORKDIR]   (prints the initial build time and the latency)
set -euo pipefail
cd "$(dirname "$0")/.."
D=${1:-/tmp/new_week_latency}/data
rm -rf "$D"; mkdir -p "$D"
.venv/bin/hm-recsys generate --scale demo --seed 0 --images no --data-dir "$D"
python3 - "$D" <<'PY'
import sys, datetime as dt
from pathlib import Path
tx = Path(sys.argv[1]) / "raw" / "transactions_train.csv"
header, *rows = tx.read_text().splitlines(keepends=True)
last = dt.date.fromisoformat(rows[-1][:10])
start = last - dt.timedelta(days=(last.weekday() - 2) % 7)
kept = [r for r in rows if dt.date.fromisoformat(r[:10]) < start]
tx.write_text(header + "".join(kept))
(Path(sys.argv[1]).parent / "held.csv").write_text("".join(rows[len(kept):]))
print("held back", len(rows) - len(kept), "rows from", start)
PY
t0=$(date +%s)
# the daemon's window (production week + newest labelled week), so it starts with nothing to do
.venv/bin/hm-recsys backtest --weeks 1 --data-dir "$D" 2>&1 | grep -v "DEBUG\|I0000\|WARNING: All" | tail -3
echo "initial production week built by the CLI in $(( $(date +%s) - t0 ))s"
setsid .venv/bin/hm-recsys ui --data-dir "$D" --port 3917 > "$D/../ui.log" 2>&1 &
UI=$!
sleep 60
before=$(ls "$D"/submissions)
t1=$(date +%s)
cat "$D/../held.csv" >> "$D/raw/transactions_train.csv"
echo "appended a week at $(date -u +%T)"
while true; do
  if (( $(date +%s) - t1 > 3600 )); then echo "no new final.csv within an hour"; kill -TERM -- -$UI; exit 1; fi
  new=$(ls "$D"/submissions | sort | tail -1)
  if [ -f "$D/submissions/$new/final.csv" ] && ! echo "$before" | grep -qx "$new"; then break; fi
  sleep 10
done
echo "new production week $new: final.csv $(( $(date +%s) - t1 ))s after the week was appended"
kill -TERM -- -$UI
