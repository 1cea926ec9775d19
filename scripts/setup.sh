#!/usr/bin/env bash
# Installs what pipelined needs on Debian 12 (idempotent; needs root or sudo for apt) and builds it.
# Usage: scripts/setup.sh [debug|release] [--tests] [--demo]   (default: debug; --tests adds what
# only the test suite needs: headless Chromium, which checks that `pipelined report` renders,
# the LibriVox readings of pocketsphinx-testdata and espeak-ng's voices, other speakers for the sync tests,
# and PostgreSQL's server programs, which the PostgreSQL tests run on a loopback port of their own;
# --demo adds espeak-ng, the speech of the demo's talking-head inputs)
set -euo pipefail
cd "$(dirname "$0")/.."
config="${1:-debug}"

# opencv-data: the BRISQUE model files of stage 7; libdlib-data: the 68-point landmark model of stage 5;
# libtorch-dev + cmake: the CPU torch backend of the Inference module (backend/torch).
# Tests: chromium (the report), pocketsphinx-testdata and espeak-ng (speech), postgresql (the shared
# ledger), python3-prometheus-client (an independent parser of the metrics endpoint's text format).
packages=(pkg-config ffmpeg libavformat-dev libavcodec-dev libavutil-dev libswresample-dev libswscale-dev libsqlite3-dev
          libopencv-dev libopencv-contrib-dev opencv-data libdlib-dev libdlib-data libblas-dev liblapack-dev
          libtorch-dev cmake)
for extra in "${@:2}"; do
    case "$extra" in
        --tests) packages+=(chromium pocketsphinx-testdata espeak-ng postgresql python3-prometheus-client) ;;
        --demo) packages+=(espeak-ng) ;;
        *) echo "setup: unknown option $extra" >&2; exit 64 ;;
    esac
done
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
    echo "setup: installing ${missing[*]}" >&2
    sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! command -v swift >/dev/null 2>&1; then
    for d in /opt/swift/usr/bin /usr/share/swift/usr/bin; do [ -x "$d/swift" ] && export PATH="$d:$PATH"; done
fi
command -v swift >/dev/null 2>&1 || {
    echo "setup: Swift 6 is required and was not found; install a toolchain from swift.org (Debian 12 build) and put it on PATH" >&2
    exit 1
}
echo "setup: building the torch backend" >&2
scripts/build-torch-backend.sh
echo "setup: building ($config)" >&2
swift build -c "$config" --product pipelined >&2
