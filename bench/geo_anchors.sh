#!/usr/bin/env bash
# An external GeoDNS benchmark harness (ANCHORS=DIR, not part of this repository) with our
# server added.
#
#   bench/geo_anchors.sh                     # REPS=3 DURATION=5 LAYOUTS=pinned MODES="ecsmix noecs"
#   REPS=1 DURATION=2 bench/geo_anchors.sh   # smoke run
#
# Copies the harness to $DEST (it writes its venv, configs and results beside itself),
# then runs it with `geodns serve` on 127.0.0.1:5306 serving bench/anchors-zones with
# the harness's own test database (geo/geo-test.mmdb), beside gdnsd, PowerDNS's geoip
# backend and the Python ceiling. The harness installs what it lacks (dnsperf, gdnsd,
# pdns via apt-get), checks every server's answers (verify.py) and prints the tables;
# results land in $DEST/results. Targets (issue 3, ecsmix, pinned, queries per server
# CPU-second): geodns >= 80% of py-ceiling and >= 1.5x pdns-geoip.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
ANCHORS=${ANCHORS:?set ANCHORS to the folder of the GeoDNS benchmark harness}
DEST=${DEST:-/tmp/geo-anchors}
PORT=${PORT:-5306}

rm -rf "$DEST"
cp -r "$ANCHORS" "$DEST"
rm -rf "$DEST/results"   # keep the harness's published results out of ours

export EXTRA_SERVERS="geodns $PORT $ROOT/.venv/bin/python -m geodns.cli serve \
--zones $ROOT/bench/anchors-zones --listen 127.0.0.1:$PORT --geoip geo/geo-test.mmdb \
--log-level warning"
export ONLY=${ONLY:-"gdnsd pdns-geoip py-ceiling geodns"}
export MODES=${MODES:-"ecsmix noecs"}
export LAYOUTS=${LAYOUTS:-pinned}
export REPS=${REPS:-3}
export DURATION=${DURATION:-5}
"$DEST/run_anchors.sh"
if ! grep -q "all answers correct" "$DEST/results/answers.md"; then
  echo "== verify FAILED: see $DEST/results/answers.md" >&2
  exit 1
fi
echo "== verify: all answers correct (every server, geodns included)"
