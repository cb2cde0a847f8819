#!/usr/bin/env bash
# The real-VM test: two QEMU guests (Debian's kernel, a busybox initramfs) on one Tapestry
# network, one through `-netdev stream` (unix socket), one through `-netdev dgram` (unix
# datagrams), ping each other. The switch runs as the calling user: socket ports need no root.
#
# Usage: scripts/vm/test-vms.sh            (builds tapestry in debug unless TAPESTRY is set)
# Env:   TAPESTRY=path/to/tapestry  QEMU_ACCEL=tcg|kvm (default tcg)  VM_DIR=.build/vm
#        SWITCH_USER=nobody (when root: the switch runs as that user, to show it needs no root)
# Needs: qemu-system-x86_64 (qemu-system-x86), busybox-static, apt-get download access.
# Exit status 0 when both guests got 3 replies; every process it started is stopped by PID.
set -euo pipefail
cd "$(dirname "$0")/../.."
command -v qemu-system-x86_64 >/dev/null || { echo "test-vms: qemu-system-x86_64 not installed (apt-get install qemu-system-x86)" >&2; exit 2; }
tapestry=${TAPESTRY:-}
if [[ -z $tapestry ]]; then
    swift build --product tapestry >/dev/null
    tapestry=$(swift build --show-bin-path)/tapestry
fi
read -r kernel initrd < <(scripts/vm/build-image.sh "${VM_DIR:-.build/vm}" | tail -1)
accel=${QEMU_ACCEL:-tcg}

run=$(mktemp -d /tmp/tapestry-vms.XXXXXX)
chmod 755 "$run"
pids=()
cleanup() {
    # The switch stops on SIGTERM (it reads signals from a signalfd). QEMU gets SIGKILL: started
    # from a thread that blocks signals (a test runner), it inherits SIGTERM blocked.
    for pid in "${pids[@]:1}"; do kill -KILL "$pid" 2>/dev/null || true; done
    [[ ${#pids[@]} -gt 0 ]] && kill -TERM "${pids[0]}" 2>/dev/null || true
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    if [[ ${KEEP:-0} != 1 ]]; then rm -rf "$run"; fi
}
trap cleanup EXIT

cat > "$run/vms.yaml" <<YAML
name: vms
control: $run/control.sock
networks:
  lan: { vlan: 10 }
ports:
  vm1: { socket: $run/vm1.sock, network: lan }        # QEMU -netdev stream connects here
  vm2: { socket: "dgram:$run/vm2.sock", network: lan } # QEMU -netdev dgram sends here
YAML

as_user=()
if [[ -n ${SWITCH_USER:-} && $(id -u) -eq 0 ]]; then
    chown "$SWITCH_USER" "$run"
    as_user=(setpriv --reuid="$SWITCH_USER" --regid="$(id -g "$SWITCH_USER")" --clear-groups --reset-env)
fi
SECONDS=0
"${as_user[@]}" "$tapestry" run "$run/vms.yaml" 2> "$run/switch.log" &
pids+=($!)
for _ in $(seq 50); do grep -q ready "$run/switch.log" && break; sleep 0.1; done
grep -q ready "$run/switch.log" || { cat "$run/switch.log" >&2; exit 1; }

guest() { # NAME MAC IP PEER NETDEV...
    local name=$1 mac=$2 ip=$3 peer=$4; shift 4
    # umask 0: the switch (maybe another user) must be able to write to QEMU's dgram socket.
    (umask 000; exec qemu-system-x86_64 -accel "$accel" -m 192 -smp 1 -no-reboot -nodefaults -display none \
        -serial "file:$run/$name.console" -kernel "$kernel" -initrd "$initrd" \
        -append "console=ttyS0 quiet panic=-1 tapestry.ip=$ip tapestry.ping=$peer" \
        -device "virtio-net-pci,netdev=n0,mac=$mac" -netdev "$@" 2> "$run/$name.qemu.log") &
    pids+=($!)
}
guest vm1 52:54:00:00:00:01 10.0.0.1/24 10.0.0.2 \
    "stream,id=n0,server=off,addr.type=unix,addr.path=$run/vm1.sock"
guest vm2 52:54:00:00:00:02 10.0.0.2/24 10.0.0.1 \
    "dgram,id=n0,local.type=unix,local.path=$run/vm2-qemu.sock,remote.type=unix,remote.path=$run/vm2.sock"

status=1
for _ in $(seq 240); do
    if grep -q TAPESTRY-PING-RESULT "$run/vm1.console" 2>/dev/null && grep -q TAPESTRY-PING-RESULT "$run/vm2.console" 2>/dev/null; then
        status=0
        break
    fi
    sleep 0.5
done
elapsed=$SECONDS
"$tapestry" ctl --control "$run/control.sock" show || true
for name in vm1 vm2; do
    echo "--- $name console (ping part)"
    sed -n '/TAPESTRY-VM-UP/,/TAPESTRY-PING-RESULT/p' "$run/$name.console" | tr -d '\r'
done
echo "--- switch log"
cat "$run/switch.log"
if [[ $status -ne 0 ]]; then
    echo "test-vms: FAILED: a guest did not finish pinging in 120 s (consoles and logs in $run with KEEP=1)" >&2
    for name in vm1 vm2; do tail -20 "$run/$name.console" "$run/$name.qemu.log" >&2 || true; done
    exit 1
fi
for name in vm1 vm2; do
    grep -q 'TAPESTRY-PING-RESULT 0' "$run/$name.console" || { echo "test-vms: FAILED: $name's ping got no replies" >&2; exit 1; }
    grep -q '3 packets received' "$run/$name.console" || { echo "test-vms: FAILED: $name did not get 3 replies" >&2; exit 1; }
done
echo "test-vms: PASSED: vm1 (stream) and vm2 (dgram) pinged each other through Tapestry in about $elapsed s (accel $accel)"
