#!/usr/bin/env bash
# One command for a new user: set up, generate a small sample input folder, run the pipeline on it
# and show the status. Output lands in ./sample/ (git-ignored).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh release --demo
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
# Talking heads: the photo's mouth opens with the loudness of speech (espeak-ng), on a 1280x720
# canvas; one clip in sync, one with its audio 3 frames early (fixed when published), one 10 frames
# late (rejected: beyond the ±6 frames kept).
if [ -f "$face" ] && [ ! -f "$raw/interviews/talk_in_sync.mp4" ]; then
    espeak-ng -v en-us -s 140 -w sample/tmp/speech.wav "The quick brown fox jumps over the lazy dog. \
        Every clip in this folder becomes a row in the database, with a reason for every decision. \
        Clips that pass every stage land in the high visual quality folder, ready for training."
    gen -i sample/tmp/speech.wav -ac 1 -ar 16000 -f f32le sample/tmp/speech.f32
    swift build -c release --product SampleInputs >&2
    "$(swift build -c release --show-bin-path)/SampleInputs" "$face" sample/tmp/speech.f32 "$raw/interviews"
fi
# The photo, drifting slowly but silent-lipped over a tone (stage 6 rejects it: the mouth does not
# follow the sound), on a 1280x720 canvas.
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

"$bin" run --input-dir "$raw" --output-dir sample/out --config pipeline.conf || { rc=$?; [ $rc -eq 3 ] || [ $rc -eq 4 ]; }
echo
"$bin" status --output-dir sample/out
echo
echo
"$bin" report --output-dir sample/out --html sample/out/report.html --config pipeline.conf
echo "dataset: $(wc -l < sample/out/fileslist.txt) clip(s) in sample/out/high_visual_quality/ (listed in sample/out/fileslist.txt, described in sample/out/manifest.jsonl)"
echo "report:  sample/out/report.html"
echo "aligned pieces and landmarks: sample/out/aligned/"
