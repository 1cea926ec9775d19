#!/usr/bin/env bash
# One command for a new user: set up, generate a small sample input folder, run the pipeline on it
# and show the status. Output lands in ./sample/ (git-ignored).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh release
bin="$(swift build -c release --show-bin-path)/pipelined"

raw=sample/raw
mkdir -p "$raw/interviews" sample/tmp
gen() { ffmpeg -nostdin -v error -y "$@"; }

# A real face: scikit-image's "astronaut" photo (NASA, public domain), taken out of Debian's
# python3-skimage package without installing it.
face=sample/tmp/astronaut.png
if [ ! -f "$face" ]; then
    (cd sample/tmp && apt-get download python3-skimage >/dev/null 2>&1 && \
     dpkg-deb --fsys-tarfile python3-skimage_*_all.deb | tar -x -O --wildcards '*skimage/data/astronaut.png' > astronaut.png) || rm -f "$face"
fi
# The photo, drifting slowly as a talking head does, on a 1280x720 canvas.
moving_face='scale=1024:1024,pad=1200:1200:(ow-iw)/2:(oh-ih)/2:color=0x808080,crop=960:540:120+40*sin(2*PI*t/5):200+20*cos(2*PI*t/4),scale=1280:720,format=yuv420p'
if [ -f "$face" ]; then
    [ -f "$raw/interviews/astronaut_30fps_stereo.mp4" ] || gen -loop 1 -framerate 30 -i "$face" -f lavfi -i "sine=frequency=200:beep_factor=3:sample_rate=44100" \
        -t 12 -filter_complex "[0:v]$moving_face[v]" -map "[v]" -map 1:a -ac 2 -c:v libx264 -preset veryfast -c:a aac "$raw/interviews/astronaut_30fps_stereo.mp4"
    # 8 s of face, then a hard cut to 7 s of test pattern: two scenes; the second has no face.
    [ -f "$raw/astronaut then pattern.mov" ] || gen -loop 1 -framerate 25 -t 8 -i "$face" -f lavfi -t 7 -i "testsrc2=size=1280x720:rate=25" \
        -f lavfi -t 15 -i "sine=frequency=260:sample_rate=16000" \
        -filter_complex "[0:v]$moving_face,setsar=1[a];[1:v]format=yuv420p,setsar=1[b];[a][b]concat=n=2:v=1:a=0[v]" -map "[v]" -map 2:a \
        -c:v libx264 -preset veryfast -c:a aac "$raw/astronaut then pattern.mov"
else
    echo "demo: could not fetch a face photo (python3-skimage); using test patterns only, which stage 5 rejects (no face)" >&2
    [ -f "$raw/interviews/pattern.mp4" ] || gen -f lavfi -i testsrc2=size=640x360:rate=30 -f lavfi -i "sine=sample_rate=44100" \
        -t 8 -c:v libx264 -preset veryfast -pix_fmt yuv420p -c:a aac "$raw/interviews/pattern.mp4"
fi
# Inputs stage 1 must reject, each with its reason.
[ -f "$raw/no_sound.mp4" ] || gen -f lavfi -i testsrc2=size=320x240:rate=25 -t 6 -c:v libx264 -preset veryfast "$raw/no_sound.mp4"
[ -f "$raw/too_short.mp4" ] || gen -f lavfi -i testsrc2=size=320x240:rate=25 -f lavfi -i sine=sample_rate=16000 -t 2 -c:v libx264 -c:a aac "$raw/too_short.mp4"
[ -f "$raw/not_a_video.mp4" ] || head -c 20000 /dev/urandom > "$raw/not_a_video.mp4"

"$bin" run --input-dir "$raw" --output-dir sample/out --config pipeline.conf || [ $? -eq 3 ]
echo
"$bin" status --output-dir sample/out
echo
echo "aligned clips: sample/out/aligned/"
