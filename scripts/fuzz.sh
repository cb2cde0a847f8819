#!/usr/bin/env bash
# Runs libFuzzer targets: scripts/fuzz.sh TARGET|all SECONDS [libFuzzer options...]
#
# Builds Fuzz/ (release, -sanitize=fuzzer,address) into .build-fuzz, then runs each target for
# SECONDS on one core, starting from the committed seeds (Fuzz/Corpus/TARGET, read only) and a
# working corpus in .build-fuzz/corpus/TARGET that grows across runs. Prints execs, execs/s and
# coverage (cov: edges, ft: features) for each target. Exits non-zero when a target crashes or
# breaks an invariant, leaving the input in .build-fuzz/crashes/TARGET/ (copy it to
# Fuzz/Regressions/TARGET/ once fixed, and the tests replay it). docs/fuzzing.md has the rest.
#
# FUZZ_LOCK: a lock file the build takes (flock), for machines where builds share cores.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
TARGETS=(frame-parser datapath pcap topology stream segmentation control frame-syntax vxlan coalescing)

if [ $# -lt 2 ]; then
  echo "usage: scripts/fuzz.sh TARGET|all SECONDS [libFuzzer options...]  (targets: ${TARGETS[*]})" >&2
  exit 2
fi
which=$1
seconds=$2
shift 2
if [ "$which" = all ]; then
  selected=("${TARGETS[@]}")
else
  case " ${TARGETS[*]} " in
    *" $which "*) selected=("$which") ;;
    *) echo "unknown target '$which' (targets: ${TARGETS[*]})" >&2; exit 2 ;;
  esac
fi

build=(swift build -c release -Xswiftc -sanitize=fuzzer,address --package-path Fuzz --scratch-path "$ROOT/.build-fuzz")
if [ -n "${FUZZ_LOCK:-}" ]; then build=(flock "$FUZZ_LOCK" "${build[@]}"); fi
"${build[@]}" >&2
binary="$ROOT/.build-fuzz/release/tapestry-fuzz"

# Per-target input size limits: frames and records are small; TSO sizes come from the
# segmentation target's length field, not from the input's length.
max_len() {
  case $1 in
    frame-parser) echo 2048 ;;
    datapath) echo 8192 ;;
    pcap) echo 4096 ;;
    topology) echo 4096 ;;
    stream) echo 8192 ;;
    segmentation) echo 4096 ;;
    control) echo 1024 ;;
    frame-syntax) echo 4096 ;;
    vxlan) echo 2048 ;;
    coalescing) echo 16384 ;;
  esac
}

status=0
summary=()
for target in "${selected[@]}"; do
  corpus="$ROOT/.build-fuzz/corpus/$target"
  crashes="$ROOT/.build-fuzz/crashes/$target"
  log="$ROOT/.build-fuzz/logs/$target.log"
  mkdir -p "$corpus" "$crashes" "$(dirname "$log")"
  echo "== $target: $seconds s" >&2
  set +e
  # One job on one core; a timeout of 10 s per input catches stalls (super-linear work).
  SWIFT_BACKTRACE=enable=no ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 "$binary" "$target" \
    -max_total_time="$seconds" -timeout=10 -rss_limit_mb=4096 -max_len="$(max_len "$target")" \
    -print_final_stats=1 -artifact_prefix="$crashes/" "$@" "$corpus" "$ROOT/Fuzz/Corpus/$target" >"$log" 2>&1
  rc=$?
  set -e
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  coverage=$(grep -Eo 'cov: [0-9]+ ft: [0-9]+' "$log" | tail -1)
  line="$target: ${execs:-?} execs, ${rate:-?} execs/s, ${coverage:-no coverage line}"
  if [ $rc -ne 0 ]; then
    status=1
    line="$line -- FAILED (exit $rc), input in $crashes/, log $log"
    grep -E 'ERROR|invariant violated|Fatal error|SUMMARY|Test unit written' "$log" | head -5 >&2 || true
  fi
  echo "$line"
  summary+=("$line")
done
if [ ${#selected[@]} -gt 1 ]; then
  echo "== summary"
  printf '%s\n' "${summary[@]}"
fi
exit $status
