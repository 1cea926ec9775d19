#!/usr/bin/env bash
# Time from start to the first published clip, and to the end, for `pipelined run` with stage
# barriers (each stage over every item before the next: how releases before the work queue ran,
# kept as `--stage-barriers`) and without (the work queue: any item whose upstream result is
# committed is claimable), on the same inputs, in this one script. Prints both and the ratios.
#
#   Benchmarks/first-publish.sh [SOURCES (default 8)] [JOBS (default: cores)]
#
# Inputs: SOURCES 10 s talking-head clips (SampleInputs --talking), generated once under
# /tmp/pipelined-first-publish/in. Uses the debug build unless PIPELINED_BIN names another binary.
set -euo pipefail
cd "$(dirname "$0")/.."
sources="${1:-8}"
jobs="${2:-$(nproc)}"
root=/tmp/pipelined-first-publish
swift build --product SampleInputs >&2
"$(swift build --show-bin-path)/SampleInputs" --talking "$sources" "$root/in-$sources" >&2
bin="${PIPELINED_BIN:-}"
if [ -z "$bin" ]; then swift build --product pipelined >&2; bin="$(swift build --show-bin-path)/pipelined"; fi

# One run: prints "<seconds to first clip> <seconds to the end> <clips published>".
measure() {
    local out="$root/out-$1"
    rm -rf "$out"
    local start; start=$(date +%s.%N)
    "$bin" run --input-dir "$root/in-$sources" --output-dir "$out" --jobs "$jobs" --quiet $2 &
    local pid=$! first=""
    while kill -0 $pid 2>/dev/null; do
        if [ -z "$first" ] && [ -n "$(find "$out/high_visual_quality" -name '*.mp4' 2>/dev/null | head -1)" ]; then
            first=$(date +%s.%N)
        fi
        sleep 0.1
    done
    wait $pid || true
    local end; end=$(date +%s.%N)
    [ -n "$first" ] || first=$end
    echo "$(echo "$first - $start" | bc) $(echo "$end - $start" | bc) $(find "$out/high_visual_quality" -name '*.mp4' 2>/dev/null | wc -l)"
}
read -r b_first b_end b_clips <<<"$(measure barriers --stage-barriers)"
read -r q_first q_end q_clips <<<"$(measure queue "")"
printf '%d sources, %s jobs, %s\n' "$sources" "$jobs" "$bin"
printf 'with stage barriers: first clip after %6.1f s, done after %6.1f s, %d clips\n' "$b_first" "$b_end" "$b_clips"
printf 'work queue:          first clip after %6.1f s, done after %6.1f s, %d clips\n' "$q_first" "$q_end" "$q_clips"
printf 'first clip %.1fx sooner; whole run %.2fx the time with barriers\n' "$(echo "$b_first / $q_first" | bc -l)" "$(echo "$q_end / $b_end" | bc -l)"
