#!/usr/bin/env bash
# Stages 1-4 of pipelined against, on the same files in this one script:
#   - a bare full decode, `ffmpeg -i IN -f null -` (the floor);
#   - PySceneDetect 0.6.1's detection alone (`scenedetect -i IN detect-adaptive --threshold 2`);
#   - the reference's stages 2-4 (bytedance/LatentSync preprocess/: resample re-encode, detect +
#     split-video, keyframe segmenting), with the commands of shared/reference/latentsync.md §1.2-1.4.
# Prints wall times, ratios, and how well the cuts agree with the reference's.
#
#   Benchmarks/stages1to4.sh [INPUT_DIR]
#
# Without INPUT_DIR it generates four 20 s 720p30 H.264/AAC files with hard cuts. PySceneDetect is
# installed into a throwaway venv (PYSD_VENV, default /tmp/pysd-venv) from PyPI on first use.
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${PYSD_VENV:-/tmp/pysd-venv}"
work="$(mktemp -d /tmp/pipelined-bench-XXXX)"
trap 'rm -rf "$work"' EXIT

if [ ! -x "$venv/bin/scenedetect" ]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q "scenedetect==0.6.1" "opencv-python-headless==4.9.0.80" "numpy<2"
fi
swift build -c release --product pipelined >&2
bin="$(swift build -c release --show-bin-path)/pipelined"

input="${1:-}"
if [ -z "$input" ]; then
    input=/tmp/pipelined-bench-scenes
    mkdir -p "$input"
    for i in 0 1 2 3; do
        f="$input/talk$i.mp4"
        [ -f "$f" ] && continue
        ffmpeg -nostdin -v error -y -f lavfi -t 8 -i "testsrc2=size=1280x720:rate=30" -f lavfi -t 7 -i "smptehdbars=size=1280x720:rate=30" \
            -f lavfi -t 5 -i "testsrc=size=1280x720:rate=30" -f lavfi -t 20 -i "sine=frequency=$((200 + 30 * i)):beep_factor=3:sample_rate=44100" \
            -filter_complex "[0:v]hue=h=$((i * 40))[a];[a][1:v][2:v]concat=n=3:v=1:a=0[v]" -map "[v]" -map 3:a -ac 2 \
            -c:v libx264 -preset veryfast -pix_fmt yuv420p -c:a aac "$f"
    done
fi
mapfile -t files < <(find "$input" -type f -name '*.mp4' | sort)
seconds=$(for f in "${files[@]}"; do ffprobe -v error -show_entries format=duration -of csv=p=0 "$f"; done | awk '{s+=$1} END {printf "%.1f", s}')
echo "inputs: ${#files[@]} files, $seconds s, $(nproc) cores"

now() { date +%s.%N; }
time_it() { local t0; t0=$(now); "$@" >/dev/null 2>&1; awk -v a="$t0" -v b="$(now)" 'BEGIN {printf "%.3f", b - a}'; }

decode() { for f in "${files[@]}"; do ffmpeg -nostdin -v error -i "$f" -f null -; done; }
ours() { rm -rf "$work/ours"; "$bin" run --input-dir "$input" --output-dir "$work/ours" --until segment --jobs "$1" --quiet; }
pysd() {
    mkdir -p "$work/pysd"
    for f in "${files[@]}"; do
        "$venv/bin/scenedetect" --quiet -i "$f" detect-adaptive --threshold 2 list-scenes -q -o "$work/pysd" -f "$(basename "$f" .mp4).csv"
    done
}
reference() {
    rm -rf "$work/ref"; mkdir -p "$work/ref/resampled" "$work/ref/shot" "$work/ref/segmented"
    for f in "${files[@]}"; do
        name=$(basename "$f" .mp4)
        ffmpeg -nostdin -loglevel error -y -i "$f" -r 25 -ar 16000 -q:a 0 "$work/ref/resampled/$name.mp4"
        "$venv/bin/scenedetect" --quiet -i "$work/ref/resampled/$name.mp4" detect-adaptive --threshold 2 \
            split-video --filename "${name}_shot_\$SCENE_NUMBER" -o "$work/ref/shot"
    done
    for s in "$work"/ref/shot/*.mp4; do
        ffmpeg -nostdin -loglevel error -y -i "$s" -map 0 -c:v copy -segment_time 5 -f segment -reset_timestamps 1 -q:a 0 \
            "$work/ref/segmented/$(basename "$s" .mp4)_%03d.mp4"
    done
}

best() { local b=""; for _ in 1 2 3; do t=$(time_it "$@"); b=$(awk -v a="$t" -v b="$b" 'BEGIN {print (b == "" || a < b) ? a : b}'); done; echo "$b"; }
t_decode=$(best decode)
t_ours1=$(best ours 1)
t_ours2=$(best ours "$(nproc)")
t_pysd=$(time_it pysd)
t_ref=$(time_it reference)

row() { awk -v n="$1" -v t="$2" -v d="$t_decode" -v s="$seconds" 'BEGIN {printf "%-52s %8.2f s  %6.1f ms/source-s  %5.2fx decode\n", n, t, 1000 * t / s, t / d}'; }
row "ffmpeg -i IN -f null - (bare decode, the floor)" "$t_decode"
row "pipelined stages 1-4, --jobs 1" "$t_ours1"
row "pipelined stages 1-4, --jobs $(nproc)" "$t_ours2"
row "scenedetect detect-adaptive --threshold 2 (alone)" "$t_pysd"
row "reference stages 2-4 (resample, detect+split, segment)" "$t_ref"
awk -v a="$t_pysd" -v b="$t_ours2" -v r="$t_ref" 'BEGIN {printf "pipelined 1-4 vs PySceneDetect detection alone: %.2fx faster; vs the reference stages 2-4: %.1fx faster\n", a / b, r / b}'

# Cut agreement, in seconds of source time: our cuts (25 fps timeline frames / 25) against
# PySceneDetect 0.6.1 run on the original files (list-scenes start times). Agreement = every cut
# within one 25 fps frame (40 ms). Not against the reference's resampled files: its `-r 25` adds
# two leading frames (502 frames where `-vf fps=25` selects 500), shifting its cut frames by 2.
ours 1
agree=0; total=0
for f in "${files[@]}"; do
    name=$(basename "$f" .mp4)
    theirs=$(tail -n +4 "$work/pysd/$name.csv" | cut -d, -f4 | paste -sd' ' -)  # rows after scene 1
    mine=$(sqlite3 "$work/ours/pipelined.sqlite" "SELECT json_extract(r.metrics, '$.cuts') FROM stageResult r JOIN source s ON s.id = r.sourceId WHERE r.stage = 'scenes' AND r.superseded = 0 AND s.relativePath = '${f#$input/}'" | tr -d '[]' | tr ',' '\n' | awk 'NF {printf "%s%.3f", (n++ ? " " : ""), $1 / 25}')
    same=$(awk -v a="$mine" -v b="$theirs" 'BEGIN {n = split(a, x, " "); m = split(b, y, " "); if (n != m) {print 0; exit}; for (i = 1; i <= n; i++) if ((x[i] - y[i]) > 0.04 || (y[i] - x[i]) > 0.04) {print 0; exit}; print 1}')
    total=$((total + 1)); agree=$((agree + same))
    echo "  $name: pipelined cuts at [$mine] s, PySceneDetect at [$theirs] s"
done
echo "cut lists agree (within one frame) on $agree of $total files"
