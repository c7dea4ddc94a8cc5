#!/usr/bin/env bash
# Bounces a session through Reverie with Ardour 7's headless export, twice,
# as a user's export would (Ardour marks every process() call kOffline).
# Needs: apt-get install ardour python3-numpy python3-scipy, and Reverie
# installed (`cargo xtask install` puts Reverie.vst3 in ~/.vst3).
# Prints, for every half-second, the tone's residual after a sine fit (the
# dream; about -inf where strength is 0), whether the two exports are bit
# for bit the same, and each activation's statistics (REVERIE_STATS).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
work="${1:-$(mktemp -d)}"
mkdir -p "$work"
session="$work/check"
rm -rf "$session"
LD_LIBRARY_PATH=/usr/lib/ardour7 /usr/lib/ardour7/ardour-vst3-scanner -q "$HOME/.vst3/Reverie.vst3"
SESSION="$session" ardour7-lua "$here/session.lua" > "$work/session.log" 2>&1
# A 15 s session range (Ardour's Lua has no setter for it).
python3 - "$session/check.ardour" <<'PY'
import sys
path = sys.argv[1]
text = open(path).read()
rng = '<Locations><Location id="99999" name="session" start="a0" end="a%d" flags="IsSessionRange" locked="0" timestamp="0" cue="0"/></Locations>'
assert '<Locations/>' in text, 'unexpected session file'
open(path, 'w').write(text.replace('<Locations/>', rng % (15 * 282240000)))
PY
for i in 1 2; do
  REVERIE_STATS="$work/stats.jsonl" ardour7-export -b float -o "$work/export$i.wav" "$session" check > "$work/export$i.log" 2>&1 || true
done
python3 "$here/residual.py" "$work/export1.wav" "$work/export2.wav"
cat "$work/stats.jsonl"
