#!/usr/bin/env bash
# The firewall's TCP established path (Sources/FirewallTiming) of this checkout and of another
# one, alternately, in one run: ns per frame (median of 7 runs each) and mallocs per frame.
#   Benchmarks/firewall-timing.sh [OTHER_CHECKOUT] [ROUNDS] [FRAMES]
# OTHER_CHECKOUT (e.g. a `git worktree add /tmp/old COMMIT`) must have the same
# Benchmarks/Sources/FirewallTiming (copy it there when it predates it).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
other=${1:-}
rounds=${2:-3}
frames=${3:-5000000}
gcc -O2 -shared -fPIC -o "$here/.build/malloc_count.so" "$here/Tools/malloc_count.c" -ldl
builds=("$here")
if [ -n "$other" ]; then builds+=("$other/Benchmarks"); fi
for dir in "${builds[@]}"; do
  (cd "$dir" && swift build -c release --product FirewallTiming > /dev/null)
done
for round in $(seq 1 "$rounds"); do
  for dir in "${builds[@]}"; do
    echo "round $round: $dir"
    LD_PRELOAD="$here/.build/malloc_count.so" "$dir/.build/release/FirewallTiming" "$frames"
  done
done
