#!/usr/bin/env bash
# How long `tapestry test` takes for a folder of 1,000 small tests: ten files of 100 tests, each
# five frames (three backend ARPs, a SYN to the VIP, a UDP datagram the firewall drops) on the
# bundled load-balancer topology (a firewall and a weighted load balancer), three expectations
# and a drop count. Prints the wall time of each of RUNS runs and their median.
#   Benchmarks/packet-tests.sh [path/to/tapestry] [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
binary=${1:-.build/release/tapestry}
runs=${2:-5}
folder=$(mktemp -d /tmp/tapestry-packet-bench.XXXXXX)
trap 'rm -rf "$folder"' EXIT
topology="$PWD/topologies/load-balancer.yaml"
for file in $(seq 0 9); do
  {
    echo "topology: $topology"
    echo "tests:"
    for test in $(seq 0 99); do
      n=$((file * 100 + test)); sport=$((10000 + n))
      cat <<TEST
  - name: client $n reaches a backend through the VIP
    frames:
      - { port: web1, eth: { src: 02:00:00:00:10:11, dst: ff:ff:ff:ff:ff:ff }, arp: { op: request, spa: 10.0.10.11, tpa: 10.0.10.1 } }
      - { port: web2, eth: { src: 02:00:00:00:10:12, dst: ff:ff:ff:ff:ff:ff }, arp: { op: request, spa: 10.0.10.12, tpa: 10.0.10.1 } }
      - { port: web3, eth: { src: 02:00:00:00:10:13, dst: ff:ff:ff:ff:ff:ff }, arp: { op: request, spa: 10.0.10.13, tpa: 10.0.10.1 } }
      - { port: client1, at: 1, eth: { src: 02:00:00:00:10:01, dst: 02:00:00:00:01:00 }, ipv4: { src: 10.0.10.1, dst: 10.0.10.100 }, tcp: { sport: $sport, dport: 80 } }
      - { port: client1, at: 2, eth: { src: 02:00:00:00:10:01, dst: 02:00:00:00:01:00 }, ipv4: { src: 10.0.10.1, dst: 10.0.10.100 }, udp: { sport: $sport, dport: 53 } }
    ignore_ports: [client1, client2, web1, web2]
    expect:
      web3:
        - arp: {}
        - arp: {}
        - ipv4: { dst: 10.0.10.13 }
          tcp: { dport: 8080, flags: S, checksum: valid }
    drops: { firewall: 1 }
TEST
    done
  } > "$folder/lb-$file.test.yaml"
done
times=()
for run in $(seq 1 "$runs"); do
  start=$(date +%s.%N)
  "$binary" test "$folder" > "$folder/out.txt" || { tail -5 "$folder/out.txt"; exit 1; }
  end=$(date +%s.%N)
  times+=("$(echo "$end - $start" | bc)")
  echo "run $run: ${times[-1]} s ($(tail -1 "$folder/out.txt"))"
done
printf '%s\n' "${times[@]}" | sort -n | awk '{ a[NR] = $1 } END { print "median: " a[int((NR + 1) / 2)] " s over " NR " runs" }'
