#!/usr/bin/env bash
# One command for a new user: set up, generate a small sample input folder, run the pipeline on it
# and show the status. Output lands in ./sample/ (git-ignored).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh release
bin="$(swift build -c release --show-bin-path)/pipelined"

raw=sample/raw
mkdir -p "$raw/interviews"
gen() { ffmpeg -nostdin -v error -y "$@"; }
# Talking-head stand-ins: a moving test pattern with speech-like beeps, at the rates phones and
# cameras produce; plus inputs the pipeline must reject with a reason.
[ -f "$raw/interviews/cam_30fps_stereo.mp4" ] || gen -f lavfi -i testsrc2=size=640x360:rate=30 -f lavfi -i "sine=frequency=220:beep_factor=3:sample_rate=44100" \
    -t 8 -ac 2 -c:v libx264 -preset veryfast -pix_fmt yuv420p -c:a aac "$raw/interviews/cam_30fps_stereo.mp4"
[ -f "$raw/phone_vfr.mkv" ] || gen -f lavfi -i testsrc2=size=360x640:rate=30 -f lavfi -i "sine=frequency=180:sample_rate=48000" \
    -t 7 -vf "select='lt(mod(n\,7)\,4)+eq(mod(n\,11)\,0)'" -fps_mode vfr -c:v libx264 -preset veryfast -c:a aac "$raw/phone_vfr.mkv"
[ -f "$raw/studio 25fps.mov" ] || gen -f lavfi -i testsrc2=size=480x270:rate=25 -f lavfi -i "sine=frequency=260:sample_rate=16000" \
    -t 9 -c:v libx264 -preset veryfast -pix_fmt yuv420p -c:a aac "$raw/studio 25fps.mov"
[ -f "$raw/no_sound.mp4" ] || gen -f lavfi -i testsrc2=size=320x240:rate=25 -t 6 -c:v libx264 -preset veryfast "$raw/no_sound.mp4"
[ -f "$raw/too_short.mp4" ] || gen -f lavfi -i testsrc2=size=320x240:rate=25 -f lavfi -i sine=sample_rate=16000 -t 2 -c:v libx264 -c:a aac "$raw/too_short.mp4"
[ -f "$raw/not_a_video.mp4" ] || head -c 20000 /dev/urandom > "$raw/not_a_video.mp4"

"$bin" run --input-dir "$raw" --output-dir sample/out --config pipeline.conf || [ $? -eq 3 ]
echo
"$bin" status --output-dir sample/out
