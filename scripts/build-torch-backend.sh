#!/usr/bin/env bash
# Builds the torch backend (backend/torch, CMake) into .build/torch-backend/libpipelined_torch.so,
# where `Inference` finds it in this build tree. Against Debian's libtorch-dev by default; on a
# machine with a CUDA PyTorch, pass its CMake prefix:
#   scripts/build-torch-backend.sh "$(python3 -c 'import torch; print(torch.utils.cmake_prefix_path)')"
set -euo pipefail
cd "$(dirname "$0")/.."
prefix=()
if [ -n "${1:-}" ]; then prefix=("-DCMAKE_PREFIX_PATH=$1"); fi
cmake -S backend/torch -B .build/torch-backend-build -DCMAKE_BUILD_TYPE=Release ${prefix[@]+"${prefix[@]}"} >/dev/null
cmake --build .build/torch-backend-build -j "$(nproc)" >&2
mkdir -p .build/torch-backend
# Through a temporary and a rename: a process that has the old library mapped keeps it intact.
cp .build/torch-backend-build/libpipelined_torch.so .build/torch-backend/libpipelined_torch.so.tmp
mv -f .build/torch-backend/libpipelined_torch.so.tmp .build/torch-backend/libpipelined_torch.so
echo "torch backend: $(pwd)/.build/torch-backend/libpipelined_torch.so" >&2
