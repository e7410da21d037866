#!/bin/sh
# The whole suite, N times in a row, beside `stress-ng --cpu 2` (Debian's
# stress-ng): what docs/reliability.md reports as "On a loaded machine".
#   scripts/test-under-load.sh [runs]        (default 3)
# Each run's time and result go to stdout and to test-under-load.log; it
# stops at the first failing run (its output is in test-under-load.run<N>.log).
set -u
runs=${1:-3}
command -v stress-ng >/dev/null || { echo "test-under-load: stress-ng is not installed (apt-get install stress-ng)" >&2; exit 2; }
stress-ng --cpu 2 --quiet &
stress=$!
trap 'kill $stress 2>/dev/null' EXIT INT TERM
log=test-under-load.log
echo "$(date -u +%FT%TZ) $(git rev-parse --short HEAD 2>/dev/null) $(nproc) cores, stress-ng --cpu 2 (pid $stress)" | tee -a "$log"
i=1
while [ "$i" -le "$runs" ]; do
  start=$(date +%s)
  npm test >"test-under-load.run$i.log" 2>&1
  rc=$?
  took=$(( $(date +%s) - start ))
  summary=$(grep -E '^  [0-9]+ (tests? passed|tests? failed|known failure)' "test-under-load.run$i.log" | tr '\n' ' ')
  echo "run $i: exit $rc in ${took} s: $summary" | tee -a "$log"
  [ "$rc" -eq 0 ] || exit "$rc"
  i=$((i + 1))
done
