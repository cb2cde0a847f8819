#!/usr/bin/env bash
# live-compare.sh - side-by-side live comparison of Tapestry and the Linux bridge.
#
# Two host namespaces are connected (a) through `tapestry run` (TAP ports) and (b) through a
# Linux bridge living in its own namespace (one veth pair per host namespace). The same
# measurements (iperf3 TCP, iperf3 UDP 64-byte frames, ping latency, MTU 9000) run ROUNDS times,
# alternating between the setups, and the median per metric is printed as a markdown table.
# Everything runs inside namespaces this script creates, with 10.0.0.0/8 addresses only, and
# everything it creates is removed on exit (also on failure or Ctrl-C).
set -euo pipefail

usage() {
    cat <<'EOF'
Usage: Benchmarks/live-compare.sh [--no-offloads] [--help]

Compares Tapestry (`tapestry run`, TAP ports) with a Linux bridge (veth pairs, bridge in a
dedicated namespace) between two network namespaces, and prints a markdown table of medians
with ratios tapestry/bridge to stdout (progress goes to stderr). Needs root.

Measurements (each repeated ROUNDS times, alternating the setups; medians are reported):
  TCP     iperf3 -c SERVER -t DURATION -J, one stream; Gbit/s received (end.sum_received)
  UDP 64B iperf3 -u -l 18 -b 0 (18-byte payload = 64-byte Ethernet frame with FCS);
          packets per second received by the server, loss %, and the sender's rate and CPU
  ping    ping -c PINGS -i 0.01; avg, p50 and mdev
  MTU     MTU 9000 on both hosts, ping -M do -s 8972 -c 3 must succeed (checked once)

Options:
  --no-offloads  also measure `tapestry run --no-offloads` (TAP without virtio-net headers/TSO)
                 as an extra column
  -h, --help     show this help

Environment:
  TAPESTRY     switch binary (default: .build/release/tapestry under the repository root,
               built with `swift build -c release --product tapestry` if missing)
  ROUNDS       repetitions per metric (default 3)
  DURATION     iperf3 seconds per test (default 5)
  PINGS        pings per latency test (default 200)
  NO_OFFLOADS  1 = same as --no-offloads
  PORTS        how the two hosts attach to tapestry (default tap):
                 tap        TAP ports, devices moved into the host namespaces
                 interface  interface ports on veth pairs (AF_PACKET), other ends in the hosts
                 stream     socket ports; each host's TAP is bridged to the switch by a QEMU
                            process (-machine none, a hub joining -netdev tap and -netdev
                            stream), i.e. the path a VM's frames take, without a guest
                 dgram      the same with -netdev dgram (unix datagrams)

Goals: TCP ratio >= 0.7, UDP 64B ratio >= 0.9, ping latency within 3x, MTU 9000 works.
EOF
}

WITH_NOOFF=${NO_OFFLOADS:-0}
for arg in "$@"; do
    case $arg in
        -h|--help) usage; exit 0 ;;
        --no-offloads) WITH_NOOFF=1 ;;
        *) echo "live-compare: unknown argument '$arg' (see --help)" >&2; exit 2 ;;
    esac
done

ROUNDS=${ROUNDS:-3}
PORTS=${PORTS:-tap}
[[ $PORTS =~ ^(tap|interface|stream|dgram)$ ]] || { echo "live-compare: PORTS must be tap, interface, stream or dgram" >&2; exit 2; }
DURATION=${DURATION:-5}
PINGS=${PINGS:-200}
for v in ROUNDS DURATION PINGS; do
    [[ ${!v} =~ ^[1-9][0-9]*$ ]] || { echo "live-compare: $v must be a positive integer" >&2; exit 2; }
done

log() { echo "live-compare: $*" >&2; }
die() { log "error: $*"; exit 1; }

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$SCRIPT_DIR/.." && pwd)

[[ $(id -u) -eq 0 ]] || die "must run as root (creates namespaces, TAP devices, veth pairs)"
for cmd in ip iperf3 ping jq awk sort ss timeout; do
    command -v "$cmd" >/dev/null 2>&1 || die "'$cmd' not found (apt-get install iproute2 iperf3 iputils-ping jq)"
done

if [[ -n ${TAPESTRY:-} ]]; then
    [[ -x $TAPESTRY ]] || die "TAPESTRY=$TAPESTRY is not an executable file"
else
    TAPESTRY=$REPO_ROOT/.build/release/tapestry
    if [[ ! -x $TAPESTRY ]]; then
        log "$TAPESTRY missing; building it (swift build -c release --product tapestry)"
        (cd "$REPO_ROOT" && swift build -c release --product tapestry) >&2
        [[ -x $TAPESTRY ]] || die "build did not produce $TAPESTRY"
    fi
fi
TAPESTRY=$(cd "$(dirname "$TAPESTRY")" && pwd)/$(basename "$TAPESTRY")

# ---------------------------------------------------------------------------------------------
# Names (unique per run; every interface name <= 15 characters) and cleanup.

S=$$
TMP=$(mktemp -d "/tmp/live-compare.$S.XXXXXX")
CREATED_NS=()        # namespaces this script created (deleted on exit)
TAPESTRY_PIDS=()     # `tapestry run` processes this script started (SIGTERMed on exit)
TAP_NAMES=()         # TAP devices our tapestry processes create (removed by them; checked)
QEMU_PIDS=()         # QEMU bridges (PORTS=stream|dgram), SIGKILLed on exit
VETHS=()             # veth root-namespace ends (PORTS=interface), deleted on exit
SERVER_PID=""        # the iperf3 server currently running, if any

check_ifname() { (( ${#1} <= 15 )) || die "interface name '$1' longer than 15 characters"; }

cleanup() {
    local rc=$? pid i
    trap - EXIT INT TERM
    set +e
    if [[ -n $SERVER_PID ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -TERM "$SERVER_PID" 2>/dev/null; wait "$SERVER_PID" 2>/dev/null
    fi
    for pid in "${TAPESTRY_PIDS[@]}"; do
        kill -0 "$pid" 2>/dev/null || continue
        kill -TERM "$pid" 2>/dev/null
        for ((i = 0; i < 100; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        if kill -0 "$pid" 2>/dev/null; then
            log "tapestry (pid $pid) did not exit after SIGTERM; sending SIGKILL"
            kill -KILL "$pid" 2>/dev/null
        fi
        wait "$pid" 2>/dev/null
    done
    for pid in "${QEMU_PIDS[@]}"; do kill -KILL "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; done
    for i in "${VETHS[@]}"; do ip link del dev "$i" 2>/dev/null; done
    # Tapestry removes its TAP devices on SIGTERM; remove any it left in the root namespace
    # (only our uniquely named ones; those in our namespaces go away with the namespaces).
    for i in "${TAP_NAMES[@]}"; do
        ip link show dev "$i" >/dev/null 2>&1 && ip link del dev "$i" 2>/dev/null
    done
    # The bridge and every veth live inside our namespaces and disappear with them.
    for i in "${CREATED_NS[@]}"; do ip netns del "$i" 2>/dev/null; done
    rm -rf "$TMP"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

add_ns() { ip netns add "$1"; CREATED_NS+=("$1"); ip -n "$1" link set lo up; }
in_ns() { local ns=$1; shift; ip netns exec "$ns" "$@"; }

# Per setup: host namespaces, devices, addresses.
declare -A NS1 NS2 DEV1 DEV2 IP1 IP2 LABEL
TARGETS=(tapestry bridge)
[[ $WITH_NOOFF == 1 ]] && TARGETS+=(nooff)
LABEL[tapestry]="tapestry ($PORTS ports)"; LABEL[bridge]="linux bridge"; LABEL[nooff]="tapestry --no-offloads"

# ---------------------------------------------------------------------------------------------
# Setups.

start_tapestry() { # target tag subnet [--no-offloads]
    local t=$1 tag=$2 net=$3 flag=${4:-} pid topo=$TMP/$1.yaml i
    NS1[$t]=lc$S-${tag}1; NS2[$t]=lc$S-${tag}2
    DEV1[$t]=l${tag}1-$S; DEV2[$t]=l${tag}2-$S
    IP1[$t]=10.0.$net.1; IP2[$t]=10.0.$net.2
    check_ifname "${DEV1[$t]}"; check_ifname "${DEV2[$t]}"
    add_ns "${NS1[$t]}"; add_ns "${NS2[$t]}"
    local port1 port2 h dev ns outer
    case $PORTS in
        tap)
            port1="tap: ${DEV1[$t]}, netns: ${NS1[$t]}"; port2="tap: ${DEV2[$t]}, netns: ${NS2[$t]}"
            TAP_NAMES+=("${DEV1[$t]}" "${DEV2[$t]}") ;;
        interface)
            for h in 1 2; do
                outer=v${tag}$h-$S
                check_ifname "$outer"
                if [[ $h == 1 ]]; then dev=${DEV1[$t]} ns=${NS1[$t]}; else dev=${DEV2[$t]} ns=${NS2[$t]}; fi
                ip link add "$outer" type veth peer name "$dev" netns "$ns"
                VETHS+=("$outer")
            done
            port1="interface: v${tag}1-$S"; port2="interface: v${tag}2-$S" ;;
        stream)
            port1="socket: $TMP/${tag}1.sock"; port2="socket: $TMP/${tag}2.sock" ;;
        dgram)
            port1="socket: \"dgram:$TMP/${tag}1.sock\""; port2="socket: \"dgram:$TMP/${tag}2.sock\"" ;;
    esac
    cat >"$topo" <<EOF
name: bench$tag
control: $TMP/$tag-control.sock
networks: { lan: { vlan: 10 } }
ports:
  h1: { $port1, network: lan }
  h2: { $port2, network: lan }
EOF
    "$TAPESTRY" run "$topo" $flag >"$TMP/$t.out" 2>"$TMP/$t.err" </dev/null &
    pid=$!
    TAPESTRY_PIDS+=("$pid")
    for ((i = 0; i < 300; i++)); do
        grep -q ready "$TMP/$t.err" && break
        kill -0 "$pid" 2>/dev/null || { cat "$TMP/$t.err" >&2; die "tapestry run${flag:+ $flag} exited before 'ready'"; }
        sleep 0.1
    done
    grep -q ready "$TMP/$t.err" || { cat "$TMP/$t.err" >&2; die "tapestry run${flag:+ $flag}: no 'ready' after 30 s"; }
    eval "PID_$t=$pid"
    if [[ $PORTS == stream || $PORTS == dgram ]]; then
        local backend
        for h in 1 2; do
            if [[ $h == 1 ]]; then dev=${DEV1[$t]} ns=${NS1[$t]}; else dev=${DEV2[$t]} ns=${NS2[$t]}; fi
            if [[ $PORTS == stream ]]; then
                backend="stream,id=s0,server=off,addr.type=unix,addr.path=$TMP/${tag}$h.sock"
            else
                backend="dgram,id=s0,local.type=unix,local.path=$TMP/${tag}$h-qemu.sock,remote.type=unix,remote.path=$TMP/${tag}$h.sock"
            fi
            qemu-system-x86_64 -machine none -nodefaults -display none \
                -netdev "tap,id=t0,ifname=$dev,script=no,downscript=no" -netdev "$backend" \
                -netdev hubport,id=p0,hubid=0,netdev=t0 -netdev hubport,id=p1,hubid=0,netdev=s0 \
                >"$TMP/qemu$h.log" 2>&1 </dev/null &
            QEMU_PIDS+=($!)
            for ((i = 0; i < 100; i++)); do ip link show dev "$dev" >/dev/null 2>&1 && break; sleep 0.1; done
            ip link set "$dev" netns "$ns" || die "QEMU's tap $dev did not appear: $(cat "$TMP/qemu$h.log")"
        done
    fi
    ip -n "${NS1[$t]}" addr add "${IP1[$t]}/24" dev "${DEV1[$t]}"
    ip -n "${NS2[$t]}" addr add "${IP2[$t]}/24" dev "${DEV2[$t]}"
    ip -n "${NS1[$t]}" link set "${DEV1[$t]}" up
    ip -n "${NS2[$t]}" link set "${DEV2[$t]}" up
    log "tapestry${flag:+ $flag} (pid $pid): ${NS1[$t]} ${IP1[$t]} <-> ${NS2[$t]} ${IP2[$t]}"
}

start_bridge() {
    local t=bridge br=lbr-$S brns=lc$S-br
    NS1[$t]=lc$S-b1; NS2[$t]=lc$S-b2
    DEV1[$t]=lb1-$S; DEV2[$t]=lb2-$S
    IP1[$t]=10.0.1.1; IP2[$t]=10.0.1.2
    local p1=lp1-$S p2=lp2-$S
    for i in "$br" "$p1" "$p2" "${DEV1[$t]}" "${DEV2[$t]}"; do check_ifname "$i"; done
    add_ns "$brns"; add_ns "${NS1[$t]}"; add_ns "${NS2[$t]}"
    # A plain L2 bridge: no netfilter on bridged frames (only affects our namespace).
    in_ns "$brns" sh -c 'for f in /proc/sys/net/bridge/bridge-nf-call-*; do [ -w "$f" ] && echo 0 >"$f"; done; true'
    ip -n "$brns" link add "$br" type bridge
    ip link add "$p1" netns "$brns" type veth peer name "${DEV1[$t]}" netns "${NS1[$t]}"
    ip link add "$p2" netns "$brns" type veth peer name "${DEV2[$t]}" netns "${NS2[$t]}"
    ip -n "$brns" link set "$p1" master "$br"
    ip -n "$brns" link set "$p2" master "$br"
    ip -n "$brns" link set "$p1" up; ip -n "$brns" link set "$p2" up; ip -n "$brns" link set "$br" up
    ip -n "${NS1[$t]}" addr add "${IP1[$t]}/24" dev "${DEV1[$t]}"
    ip -n "${NS2[$t]}" addr add "${IP2[$t]}/24" dev "${DEV2[$t]}"
    ip -n "${NS1[$t]}" link set "${DEV1[$t]}" up
    ip -n "${NS2[$t]}" link set "${DEV2[$t]}" up
    BR_NS=$brns; BR_DEV=$br; BR_PORTS=("$p1" "$p2")
    log "linux bridge $br in $brns: ${NS1[$t]} ${IP1[$t]} <-> ${NS2[$t]} ${IP2[$t]}"
}

# ---------------------------------------------------------------------------------------------
# Measurements. Each appends one value per metric to R[target:metric]; a failed measurement
# only warns (the median is taken over the rounds that worked).

declare -A R
add() { R[$1:$2]+="$3 "; }

cpu_ticks() { # utime+stime of a pid (all threads), in clock ticks
    awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$1/stat" 2>/dev/null || echo 0
}
CLK_TCK=$(getconf CLK_TCK)

start_server() { # ns ip
    in_ns "$1" iperf3 -s -1 -B "$2" >"$TMP/server.log" 2>&1 &
    SERVER_PID=$!
    local i
    for ((i = 0; i < 50; i++)); do
        in_ns "$1" ss -Hltn "sport = :5201" 2>/dev/null | grep -q . && return 0
        kill -0 "$SERVER_PID" 2>/dev/null || break
        sleep 0.1
    done
    log "warning: iperf3 server in $1 did not start"; cat "$TMP/server.log" >&2
    stop_server; return 1
}
stop_server() {
    [[ -n $SERVER_PID ]] || return 0
    # With -1 the server exits after one test; give it a moment, then stop it.
    local i
    for ((i = 0; i < 50; i++)); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$SERVER_PID" 2>/dev/null && kill -TERM "$SERVER_PID" 2>/dev/null
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=""
}

run_iperf() { # target out.json [client args...]; records switch CPU% in IPERF_SWCPU
    local t=$1 out=$2; shift 2
    local pidvar=PID_$t pid="" c0=0 c1 t0 t1 rc=0
    [[ $t != bridge ]] && pid=${!pidvar}
    start_server "${NS2[$t]}" "${IP2[$t]}" || return 1
    [[ -n $pid ]] && c0=$(cpu_ticks "$pid")
    t0=$(date +%s.%N)
    timeout $((DURATION + 30)) ip netns exec "${NS1[$t]}" \
        iperf3 -c "${IP2[$t]}" -t "$DURATION" -J --connect-timeout 3000 "$@" >"$out" 2>"$out.err" || rc=$?
    t1=$(date +%s.%N)
    IPERF_SWCPU=""
    if [[ -n $pid ]]; then
        c1=$(cpu_ticks "$pid")
        IPERF_SWCPU=$(awk -v a="$c0" -v b="$c1" -v h="$CLK_TCK" -v s="$t0" -v e="$t1" \
            'BEGIN { printf "%.0f", (b - a) / h / (e - s) * 100 }')
    fi
    stop_server
    if (( rc != 0 )) || jq -e '.error' "$out" >/dev/null 2>&1; then
        log "warning: iperf3 $* on $t failed (rc $rc): $(jq -r '.error // empty' "$out" 2>/dev/null) $(head -c 300 "$out.err")"
        return 1
    fi
}

measure_tcp() {
    local t=$1 out=$TMP/tcp.json v
    run_iperf "$t" "$out" || return 0
    v=$(jq -r '.end.sum_received.bits_per_second / 1e9' "$out")
    add "$t" tcp "$v"
    [[ -n $IPERF_SWCPU ]] && add "$t" tcp_swcpu "$IPERF_SWCPU"
    log "  $t TCP: $(printf '%.2f' "$v") Gbit/s${IPERF_SWCPU:+ (switch CPU $IPERF_SWCPU%)}"
}

udp_rcvbuf_errors() { # ns -> Udp RcvbufErrors of that namespace
    in_ns "$1" awk '$1 == "Udp:" { if (!n) { for (i = 2; i <= NF; i++) if ($i == "RcvbufErrors") c = i; n = 1 } else print $c }' /proc/net/snmp
}
dev_stat() { # ns dev counter
    in_ns "$1" cat "/sys/class/net/$2/statistics/$3" 2>/dev/null || echo 0
}

measure_udp() {
    local t=$1 out=$TMP/udp.json rx tx loss scpu rcpu sent txd0 txd1 rb0 rb1
    txd0=$(dev_stat "${NS1[$t]}" "${DEV1[$t]}" tx_dropped); rb0=$(udp_rcvbuf_errors "${NS2[$t]}")
    run_iperf "$t" "$out" -u -l 18 -b 0 || return 0
    txd1=$(dev_stat "${NS1[$t]}" "${DEV1[$t]}" tx_dropped); rb1=$(udp_rcvbuf_errors "${NS2[$t]}")
    sent=$(jq -r '.end.sum_sent.packets' "$out")
    # Where the loss happens: the sender's device (for a TAP: the switch did not read in time)
    # and the receiving socket's buffer (the iperf3 server did not read in time).
    add "$t" udp_txdrop "$(awk -v a="$txd0" -v b="$txd1" -v s="$sent" 'BEGIN { print s ? (b - a) * 100 / s : 0 }')"
    add "$t" udp_rcvbuf "$(awk -v a="$rb0" -v b="$rb1" -v s="$sent" 'BEGIN { print s ? (b - a) * 100 / s : 0 }')"
    # end.sum_received (server side, iperf3 3.12): packets = highest sequence number seen,
    # lost_packets = gaps, so received = packets - lost_packets. end.sum_sent.packets = sent.
    rx=$(jq -r '.end.sum_received | (.packets - .lost_packets) / .seconds' "$out")
    loss=$(jq -r '.end.sum_received.lost_percent' "$out")
    tx=$(jq -r '.end.sum_sent | .packets / .seconds' "$out")
    scpu=$(jq -r '.end.cpu_utilization_percent.host_total' "$out")
    rcpu=$(jq -r '.end.cpu_utilization_percent.remote_total' "$out")
    add "$t" udp_rx "$(awk -v x="$rx" 'BEGIN { print x / 1000 }')"
    add "$t" udp_tx "$(awk -v x="$tx" 'BEGIN { print x / 1000 }')"
    add "$t" udp_loss "$loss"
    add "$t" udp_scpu "$scpu"
    add "$t" udp_rcpu "$rcpu"
    [[ -n $IPERF_SWCPU ]] && add "$t" udp_swcpu "$IPERF_SWCPU"
    log "  $t UDP 64B: rx $(printf '%.0f' "$rx") pps, tx $(printf '%.0f' "$tx") pps, loss $(printf '%.1f' "$loss")% (sender device $((txd1 - txd0)), receiver socket $((rb1 - rb0)) of $sent), sender CPU $(printf '%.0f' "$scpu")%${IPERF_SWCPU:+, switch CPU $IPERF_SWCPU%}"
}

measure_ping() {
    local t=$1 out=$TMP/ping.txt rc=0 stats p50 loss
    timeout $((PINGS / 10 + 30)) ip netns exec "${NS1[$t]}" \
        ping -n -c "$PINGS" -i 0.01 -W 1 "${IP2[$t]}" >"$out" 2>&1 || rc=$?
    stats=$(sed -n 's|^rtt min/avg/max/mdev = \([^ ]*\) ms.*|\1|p' "$out")
    if [[ -z $stats ]]; then log "warning: ping on $t failed (rc $rc): $(tail -n 2 "$out")"; return 0; fi
    loss=$(sed -n 's/.* \([0-9.]*\)% packet loss.*/\1/p' "$out")
    [[ $loss == 0 ]] || log "warning: ping on $t lost $loss% of packets"
    p50=$(sed -n 's/.* time=\([0-9.]*\) ms.*/\1/p' "$out" | sort -g |
        awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }')
    IFS=/ read -r _ avg _ mdev <<<"$stats"
    add "$t" ping_avg "$avg"; add "$t" ping_p50 "$p50"; add "$t" ping_mdev "$mdev"
    log "  $t ping: avg $avg ms, p50 $p50 ms, mdev $mdev ms"
}

measure_mtu() {
    local t=$1 ok=yes
    if [[ $t == bridge ]]; then # the bridge's own ports too (the bridge follows its ports)
        ip -n "$BR_NS" link set "${BR_PORTS[0]}" mtu 9000 || ok=no
        ip -n "$BR_NS" link set "${BR_PORTS[1]}" mtu 9000 || ok=no
        ip -n "$BR_NS" link set "$BR_DEV" mtu 9000 || ok=no
    fi
    if [[ $t != bridge && $PORTS == interface ]]; then # the interface ports' own ends too, as for the bridge
        for i in "${VETHS[@]}"; do ip link set "$i" mtu 9000 || ok=no; done
    fi
    ip -n "${NS1[$t]}" link set "${DEV1[$t]}" mtu 9000 || ok=no
    ip -n "${NS2[$t]}" link set "${DEV2[$t]}" mtu 9000 || ok=no
    if [[ $ok == yes ]]; then
        in_ns "${NS1[$t]}" ping -n -M do -s 8972 -c 3 -i 0.2 -W 2 "${IP2[$t]}" >"$TMP/mtu.txt" 2>&1 || ok=no
        in_ns "${NS2[$t]}" ping -n -M do -s 8972 -c 3 -i 0.2 -W 2 "${IP1[$t]}" >>"$TMP/mtu.txt" 2>&1 || ok=no
    fi
    [[ $ok == yes ]] || log "warning: MTU 9000 on $t failed: $(grep -E 'loss|error|too long|Operation' "$TMP/mtu.txt" 2>/dev/null | tr '\n' ' ')"
    R[$t:mtu]=$ok
    log "  $t MTU 9000: $ok"
}

# ---------------------------------------------------------------------------------------------
# Run.

START=$SECONDS
COMMAND="TAPESTRY=$TAPESTRY ROUNDS=$ROUNDS DURATION=$DURATION PINGS=$PINGS $0${*:+ $*}"
log "$COMMAND"
start_tapestry tapestry t 0
start_bridge
[[ $WITH_NOOFF == 1 ]] && start_tapestry nooff n 2 --no-offloads

for t in "${TARGETS[@]}"; do # warm up ARP and MAC learning
    in_ns "${NS1[$t]}" ping -n -c 3 -i 0.2 -W 2 "${IP2[$t]}" >/dev/null 2>&1 ||
        die "${LABEL[$t]}: ${NS1[$t]} cannot ping ${IP2[$t]}"
done

for ((round = 1; round <= ROUNDS; round++)); do
    # Alternate the setups within each metric, and flip the order every round.
    order=("${TARGETS[@]}")
    if (( round % 2 == 0 )); then
        order=(); for ((i = ${#TARGETS[@]} - 1; i >= 0; i--)); do order+=("${TARGETS[i]}"); done
    fi
    log "round $round/$ROUNDS (order: ${order[*]})"
    for m in measure_tcp measure_udp measure_ping; do
        for t in "${order[@]}"; do $m "$t"; done
    done
done
log "MTU 9000"
for t in "${TARGETS[@]}"; do measure_mtu "$t"; done

# ---------------------------------------------------------------------------------------------
# Report.

median() { # values... -> median, or empty
    printf '%s\n' "$@" | grep . | sort -g |
        awk '{ v[NR] = $1 } END { if (NR == 0) exit; if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
med() { # target metric
    # shellcheck disable=SC2086
    median ${R[$1:$2]:-}
}
fmt() { [[ -z $2 ]] && { echo "n/a"; return; }; printf "%.${1}f" "$2"; }
ratio() { [[ -z $1 || -z $2 ]] && { echo "n/a"; return; }; awk -v a="$1" -v b="$2" 'BEGIN { if (b == 0) print "n/a"; else printf "%.2f", a / b }'; }

row() { # label digits metric show_ratio
    local label=$1 digits=$2 metric=$3 show=$4 b line t v
    b=$(med bridge "$metric")
    line="| $label | $(fmt "$digits" "$(med tapestry "$metric")") | $(fmt "$digits" "$b") |"
    if [[ $show == 1 ]]; then line+=" $(ratio "$(med tapestry "$metric")" "$b") |"; else line+=" - |"; fi
    if [[ $WITH_NOOFF == 1 ]]; then
        v=$(med nooff "$metric")
        line+=" $(fmt "$digits" "$v") |"
        if [[ $show == 1 ]]; then line+=" $(ratio "$v" "$b") |"; else line+=" - |"; fi
    fi
    echo "$line"
}
switch_row() { # label metric: switch process CPU (no bridge equivalent)
    local line="| $1 | $(fmt 0 "$(med tapestry "$2")") | - | - |"
    [[ $WITH_NOOFF == 1 ]] && line+=" $(fmt 0 "$(med nooff "$2")") | - |"
    echo "$line"
}

ELAPSED=$((SECONDS - START))
echo "Live comparison, $(date -u '+%Y-%m-%d %H:%M UTC'), $(uname -r), $(nproc) cores, $($TAPESTRY --version 2>/dev/null || echo 'tapestry ?')"
echo
echo "\`$COMMAND\` (medians of $ROUNDS rounds, ${ELAPSED} s)"
echo
if [[ $WITH_NOOFF == 1 ]]; then
    echo "| metric | tapestry | linux bridge | ratio | tapestry --no-offloads | ratio |"
    echo "| --- | --- | --- | --- | --- | --- |"
else
    echo "| metric | tapestry | linux bridge | ratio |"
    echo "| --- | --- | --- | --- |"
fi
row "TCP, 1 stream (Gbit/s received)" 2 tcp 1
row "UDP 64B received (kpps)" 0 udp_rx 1
row "UDP 64B loss (%)" 1 udp_loss 0
row "UDP 64B loss at sender's device (% of sent)" 1 udp_txdrop 0
row "UDP 64B loss at receiver socket buffer (% of sent)" 1 udp_rcvbuf 0
row "UDP 64B sent by iperf3 (kpps)" 0 udp_tx 1
row "UDP iperf3 sender CPU (%)" 0 udp_scpu 0
row "UDP iperf3 receiver CPU (%)" 0 udp_rcpu 0
switch_row "switch process CPU, TCP (%)" tcp_swcpu
switch_row "switch process CPU, UDP (%)" udp_swcpu
row "ping avg (ms)" 3 ping_avg 1
row "ping p50 (ms)" 3 ping_p50 1
row "ping mdev (ms)" 3 ping_mdev 0
line="| MTU 9000 (ping -M do -s 8972, both ways) | ${R[tapestry:mtu]:-n/a} | ${R[bridge:mtu]:-n/a} | - |"
[[ $WITH_NOOFF == 1 ]] && line+=" ${R[nooff:mtu]:-n/a} | - |"
echo "$line"
echo
goal() { # text ratio op threshold
    local verdict
    verdict=$(awk -v r="$2" -v op="$3" -v g="$4" 'BEGIN { if (r == "n/a") print "n/a"; else if ((op == ">=" && r >= g) || (op == "<=" && r <= g)) print "met"; else print "NOT met" }')
    echo "- $1: ratio $2 ($verdict)"
}
echo "Goals (tapestry/bridge):"
goal "TCP ratio >= 0.7" "$(ratio "$(med tapestry tcp)" "$(med bridge tcp)")" ">=" 0.7
goal "UDP 64B received ratio >= 0.9" "$(ratio "$(med tapestry udp_rx)" "$(med bridge udp_rx)")" ">=" 0.9
goal "ping avg latency within 3x" "$(ratio "$(med tapestry ping_avg)" "$(med bridge ping_avg)")" "<=" 3
echo "- MTU 9000 works: ${R[tapestry:mtu]:-n/a} ($([[ ${R[tapestry:mtu]:-} == yes ]] && echo met || echo 'NOT met'))"
echo
echo "Bridge: Linux bridge in its own namespace, veth pair per host, bridge-nf-call-* off."
echo "Switch CPU is the tapestry process (all threads) over the iperf3 client's run; 100% = one core."
