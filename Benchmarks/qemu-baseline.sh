#!/usr/bin/env bash
# qemu-baseline.sh - what QEMU's socket backends cost without any switch: two host namespaces,
# each behind a QEMU process (-machine none, a hub joining -netdev tap and a socket backend), the
# two QEMUs connected straight to each other (stream: one listens, one connects; dgram: each
# sends to the other's path). Prints iperf3 TCP (Gbit/s) and ping (ms) medians, to set beside
# `PORTS=stream|dgram Benchmarks/live-compare.sh`, where a switch sits in the middle.
# Root; everything in namespaces it creates (10.0.0.0/8), removed on exit.
# Usage: MODE=stream|dgram ROUNDS=3 DURATION=5 Benchmarks/qemu-baseline.sh
set -euo pipefail
MODE=${MODE:-stream}; ROUNDS=${ROUNDS:-3}; DURATION=${DURATION:-5}
[[ $(id -u) -eq 0 ]] || { echo "qemu-baseline: needs root" >&2; exit 1; }
S=$$; TMP=$(mktemp -d /tmp/qemu-baseline.XXXXXX); PIDS=(); NSS=()
cleanup() {
    set +e  # a killed QEMU's `wait` status must not stop the cleanup
    for pid in "${PIDS[@]}"; do kill -KILL "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; done
    for ns in "${NSS[@]}"; do ip netns del "$ns" 2>/dev/null; done
    rm -rf "$TMP"
}
trap cleanup EXIT
if [[ $MODE == stream ]]; then
    backend1="stream,id=s0,server=on,addr.type=unix,addr.path=$TMP/s.sock"
    backend2="stream,id=s0,server=off,addr.type=unix,addr.path=$TMP/s.sock"
else
    backend1="dgram,id=s0,local.type=unix,local.path=$TMP/1.sock,remote.type=unix,remote.path=$TMP/2.sock"
    backend2="dgram,id=s0,local.type=unix,local.path=$TMP/2.sock,remote.type=unix,remote.path=$TMP/1.sock"
fi
for h in 1 2; do
    ns=qb$S-$h; dev=qb$h-$S; backend=backend$h
    ip netns add "$ns"; NSS+=("$ns"); ip -n "$ns" link set lo up
    qemu-system-x86_64 -machine none -nodefaults -display none \
        -netdev "tap,id=t0,ifname=$dev,script=no,downscript=no" -netdev "${!backend}" \
        -netdev hubport,id=p0,hubid=0,netdev=t0 -netdev hubport,id=p1,hubid=0,netdev=s0 >"$TMP/q$h.log" 2>&1 </dev/null &
    PIDS+=($!)
    for _ in $(seq 100); do ip link show "$dev" >/dev/null 2>&1 && break; sleep 0.1; done
    ip link set "$dev" netns "$ns"
    ip -n "$ns" addr add "10.0.0.$h/24" dev "$dev"; ip -n "$ns" link set "$dev" up
done
ip netns exec qb$S-1 ping -c 3 -i 0.2 -W 2 10.0.0.2 >/dev/null || { echo "qemu-baseline: no connectivity" >&2; cat "$TMP"/q*.log >&2; exit 1; }
tcp=(); ping=()
for ((r = 1; r <= ROUNDS; r++)); do
    ip netns exec qb$S-2 iperf3 -s -1 >/dev/null 2>&1 & server=$!; sleep 0.5
    tcp+=("$(ip netns exec qb$S-1 iperf3 -c 10.0.0.2 -t "$DURATION" -J | jq '.end.sum_received.bits_per_second / 1e9')")
    wait $server || true
    ping+=("$(ip netns exec qb$S-1 ping -n -c 200 -i 0.01 10.0.0.2 | sed -n 's|^rtt min/avg/max/mdev = [^/]*/\([^/]*\)/.*|\1|p')")
    echo "qemu-baseline: round $r: TCP ${tcp[-1]} Gbit/s, ping avg ${ping[-1]} ms" >&2
done
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
echo "QEMU $MODE backends connected directly (no switch), medians of $ROUNDS: TCP $(median "${tcp[@]}") Gbit/s, ping avg $(median "${ping[@]}") ms"
