#!/usr/bin/env bash
# vxlan-compare.sh - TCP over VXLAN through Tapestry against the kernel doing the same job.
#
# A host namespace (h1) reaches a remote namespace (r1) whose Linux `vxlan` device (VNI 5010)
# holds 10.0.50.2, over a veth underlay (10.0.98.1 <-> 10.0.98.2):
#   tapestry  h1 --TAP-- tapestry run (a tap port and a vxlan: port in namespace u) --veth-- r1 vx0
#   kernel    h1 --veth-- Linux bridge + vxlan device in namespace u                --veth-- r1 vx0
# The same iperf3 runs (one TCP stream each way) alternate between the two setups ROUNDS times;
# the medians and the ratio tapestry/kernel are printed as a markdown table. Everything runs in
# namespaces this script creates (10.0.0.0/8 only) and is removed on exit. Needs root.
#
# Environment: TAPESTRY (default .build/release/tapestry), ROUNDS (3), DURATION (5 s).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
TAPESTRY=${TAPESTRY:-$ROOT/.build/release/tapestry}
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-5}
P=vxb$$
WORK=$(mktemp -d)
SWITCH_PID=""

[ "$(id -u)" = 0 ] || { echo "vxlan-compare.sh: needs root (namespaces, TAP devices)" >&2; exit 1; }
[ -x "$TAPESTRY" ] || { echo "vxlan-compare.sh: no switch binary at $TAPESTRY (swift build -c release --product tapestry)" >&2; exit 1; }
command -v iperf3 >/dev/null || { echo "vxlan-compare.sh: iperf3 is not installed" >&2; exit 1; }

stop_switch() {
    if [ -n "$SWITCH_PID" ]; then kill "$SWITCH_PID" 2>/dev/null || true; wait "$SWITCH_PID" 2>/dev/null || true; SWITCH_PID=""; fi
}
cleanup() {
    stop_switch
    for ns in h1 u r1; do ip netns del "$P-$ns" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT

for ns in h1 u r1; do ip netns add "$P-$ns"; ip -n "$P-$ns" link set lo up; done
# The underlay, and the remote's Linux vxlan device; its veth keeps checksums complete (see
# docs/multi-host.md: a UDP socket gets what crosses a veth as it is).
ip link add "$P-ul" netns "$P-u" type veth peer name "$P-ur" netns "$P-r1"
ip -n "$P-u" addr add 10.0.98.1/24 dev "$P-ul"; ip -n "$P-u" link set "$P-ul" up
ip -n "$P-r1" addr add 10.0.98.2/24 dev "$P-ur"; ip -n "$P-r1" link set "$P-ur" up
ip netns exec "$P-r1" ethtool -K "$P-ur" tx off >/dev/null
ip -n "$P-r1" link add vx0 type vxlan id 5010 local 10.0.98.2 remote 10.0.98.1 dstport 4789
ip -n "$P-r1" addr add 10.0.50.2/24 dev vx0; ip -n "$P-r1" link set vx0 up

setup_tapestry() {
    cat > "$WORK/topology.yaml" <<EOF
name: $P
control: $WORK/control.sock
networks: { web: { vlan: 10, vni: 5010 } }
ports:
  h1: { tap: $P-t, network: web, netns: $P-h1 }
  dc2:
    vxlan: { local: 10.0.98.1, remotes: [10.0.98.2] }
    netns: $P-u
    network: web
EOF
    "$TAPESTRY" run "$WORK/topology.yaml" > "$WORK/switch.log" 2>&1 &
    SWITCH_PID=$!
    for _ in $(seq 100); do grep -q ready "$WORK/switch.log" && break; sleep 0.1; done
    grep -q ready "$WORK/switch.log" || { cat "$WORK/switch.log" >&2; exit 1; }
    ip -n "$P-h1" addr add 10.0.50.1/24 dev "$P-t"
    ip -n "$P-h1" link set "$P-t" mtu 1450 up
}
teardown_tapestry() { stop_switch; }

setup_kernel() {
    ip link add "$P-h" netns "$P-h1" type veth peer name "$P-b" netns "$P-u"
    ip -n "$P-u" link add br0 type bridge
    ip -n "$P-u" link add vxk type vxlan id 5010 local 10.0.98.1 remote 10.0.98.2 dstport 4789
    ip -n "$P-u" link set vxk master br0; ip -n "$P-u" link set "$P-b" master br0
    for dev in br0 vxk "$P-b"; do ip -n "$P-u" link set "$dev" up; done
    ip -n "$P-h1" addr add 10.0.50.1/24 dev "$P-h"
    ip -n "$P-h1" link set "$P-h" mtu 1450 up
}
teardown_kernel() {
    ip -n "$P-h1" link del "$P-h" 2>/dev/null || true
    ip -n "$P-u" link del vxk 2>/dev/null || true
    ip -n "$P-u" link del br0 2>/dev/null || true
}

# One iperf3 run: client namespace, server namespace, server address; prints Gbit/s.
tcp() {
    ip netns exec "$P-$2" iperf3 -s -1 -p 5201 >/dev/null 2>&1 &
    local server=$!
    sleep 0.3
    ip netns exec "$P-$1" iperf3 -c "$3" -p 5201 -t "$DURATION" -J > "$WORK/iperf.json" || true
    wait "$server" 2>/dev/null || true
    python3 -c 'import json,sys; print("%.2f" % (json.load(open(sys.argv[1]))["end"]["sum_received"]["bits_per_second"] / 1e9))' "$WORK/iperf.json" 2>/dev/null || echo 0
}

median() { printf '%s\n' "$@" | sort -g | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }

declare -a T_OUT T_IN K_OUT K_IN
for round in $(seq "$ROUNDS"); do
    setup_tapestry
    ip netns exec "$P-h1" ping -c 2 -W 2 10.0.50.2 >/dev/null || { echo "tapestry path: no ping" >&2; cat "$WORK/switch.log" >&2; exit 1; }
    T_OUT+=("$(tcp h1 r1 10.0.50.2)"); T_IN+=("$(tcp r1 h1 10.0.50.1)")
    teardown_tapestry
    setup_kernel
    ip netns exec "$P-h1" ping -c 2 -W 2 10.0.50.2 >/dev/null || { echo "kernel path: no ping" >&2; exit 1; }
    K_OUT+=("$(tcp h1 r1 10.0.50.2)"); K_IN+=("$(tcp r1 h1 10.0.50.1)")
    teardown_kernel
    echo "round $round: tapestry ${T_OUT[-1]} / ${T_IN[-1]}, kernel ${K_OUT[-1]} / ${K_IN[-1]} Gbit/s (out / in)" >&2
done

ratio() { python3 -c 'import sys; a, b = float(sys.argv[1]), float(sys.argv[2]); print("%.2f" % (a / b) if b else "-")' "$1" "$2"; }
to=$(median "${T_OUT[@]}"); ti=$(median "${T_IN[@]}"); ko=$(median "${K_OUT[@]}"); ki=$(median "${K_IN[@]}")
echo "| TCP over VXLAN, median of $ROUNDS x ${DURATION} s | tapestry | kernel (bridge + vxlan) | tapestry / kernel |"
echo "| --- | --- | --- | --- |"
echo "| host -> Linux vxlan peer (Gbit/s) | $to | $ko | $(ratio "$to" "$ko") |"
echo "| Linux vxlan peer -> host (Gbit/s) | $ti | $ki | $(ratio "$ti" "$ki") |"
