#!/usr/bin/env bash
# Fails when a test run left something behind: a network namespace the live tests or the demo
# create (tl* for the tests' labs, demo-* for topologies/demo.yaml, soak-* for the soak), or a
# process they start (a `tapestry run` on a lab topology, a lab's iperf3, http.server or sleeper).
# It only looks; it ends nothing. CI runs it after the test suite.
set -uo pipefail
left=0
namespaces=$(ip netns list 2>/dev/null | awk '{print $1}' | grep -E '^(tl[0-9]+-|demo-|soak-)' || true)
if [ -n "$namespaces" ]; then
  echo "leftover namespaces:" $namespaces
  left=1
fi
processes=$(pgrep -af 'tapestry run /tmp/tl|tapestry-demo|python3 -m http.server|busybox httpd|iperf3 -s|sleep 300' | grep -v pgrep || true)
if [ -n "$processes" ]; then
  echo "leftover processes:"
  echo "$processes"
  left=1
fi
if [ $left = 0 ]; then echo "leftovers: none (no lab namespace or process remains)"; fi
exit $left
