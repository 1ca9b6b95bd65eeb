#!/usr/bin/env bash
# geodns in a GeoDNS benchmark harness that is not part of this repository ("the anchors"):
# its folder is the one required argument.
#
#   bench/geo_anchors.sh HARNESS                    # REPS=3 DURATION=5 LAYOUTS=pinned
#   REPS=1 DURATION=2 bench/geo_anchors.sh HARNESS  # smoke run
#
# What the harness must hold: `run_anchors.sh`, which runs each server named in $ONLY
# (its own: gdnsd, pdns-geoip, py-ceiling; ours through $EXTRA_SERVERS, "NAME PORT
# COMMAND") under dnsperf for $MODES, $LAYOUTS, $REPS x $DURATION s, checks every
# server's answers and writes results/answers.md ("all answers correct") beside the
# tables; and its test database geo/geo-test.mmdb, relative to its folder.
#
# Copies the harness to $DEST (it writes its venv, configs and results beside itself),
# then runs it with `geodns serve` on 127.0.0.1:5306 serving bench/anchors-zones with
# the harness's own test database. Results land in $DEST/results. Targets (issue 3,
# ecsmix, pinned, queries per server CPU-second): geodns >= 80% of py-ceiling and
# >= 1.5x pdns-geoip.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
if [ $# -ne 1 ]; then
  echo "usage: bench/geo_anchors.sh HARNESS (the folder of the GeoDNS benchmark harness," \
       "with its run_anchors.sh)" >&2
  exit 2
fi
if [ ! -f "$1/run_anchors.sh" ] || [ ! -f "$1/geo/geo-test.mmdb" ]; then
  echo "geo_anchors.sh: $1 is not the GeoDNS benchmark harness" \
       "(no run_anchors.sh or geo/geo-test.mmdb in it)" >&2
  exit 2
fi
HARNESS=$(cd "$1" && pwd)
DEST=${DEST:-/tmp/geo-anchors}
PORT=${PORT:-5306}

rm -rf "$DEST"
cp -r "$HARNESS" "$DEST"
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
