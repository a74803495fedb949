#!/usr/bin/env bash
# Wait up to $1 seconds for the background session (session.sh) to finish, then pack
# what it has written so far into $OUT (the lent machine's return folder).
res=${2:-/tmp/res}
end=$((SECONDS + ${1:-500}))
while [ ! -f "$res/DONE" ] && [ $SECONDS -lt $end ]; do sleep 5; done
tar -czf "$OUT/res.tgz" -C "$(dirname "$res")" "$(basename "$res")" 2>/dev/null
cp /tmp/res.log "$OUT/session.log" 2>/dev/null
cat "$res/stages.txt" 2>/dev/null
tail -c 6000 /tmp/res.log
