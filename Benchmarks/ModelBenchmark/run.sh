#!/usr/bin/env bash
# On the GPU machine (see shared/GPU.md): builds the torch backend against the machine's PyTorch,
# runs InferenceCheck (a static Swift binary built elsewhere and carried here) for golden parity on
# CUDA and for the throughput benchmark, runs baseline.py (the same models eagerly in PyTorch) and
# prints the comparison.
#   Benchmarks/ModelBenchmark/run.sh CARRY_DIR OUT_DIR [PARITY_MODELS|none] [bench|generator|train|all]
# `generator`: the lip-sync generator over a 10 s clip (see below), beside LatentSync's own pipeline when LATENTSYNC is set.
# `train`: StableSyncNet training steps (reference config, batch 256) in Swift and in train_baseline.py,
# fp16 and bf16, with the ratio and TFLOP/s (FLOPs counted by PyTorch's FlopCounterMode).
# CARRY_DIR holds InferenceCheck (or InferenceCheck.xz) and golden/<model>/ files (optionally .xz).
set -euo pipefail
carry=$1 out=$2 models=${3:-syncnet_v2,stable_syncnet,hyperiqa} bench=${4:-}
here=$(cd "$(dirname "$0")" && pwd) root=$(cd "$here/../.." && pwd)
mkdir -p "$out" /tmp/ic
prefix=$(python3 -c 'import torch; print(torch.utils.cmake_prefix_path)')
if [ ! -f /tmp/ic/backend/libpipelined_torch.so ]; then
  cmake -S "$root/backend/torch" -B /tmp/ic/backend -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_BUILD_TYPE=Release >"$out/cmake.log" 2>&1
  cmake --build /tmp/ic/backend -j 16 >>"$out/cmake.log" 2>&1 || { tail -30 "$out/cmake.log"; exit 1; }
fi
export PIPELINED_TORCH_BACKEND=/tmp/ic/backend/libpipelined_torch.so
cp -r "$carry"/. /tmp/ic/
find /tmp/ic -name '*.xz' -exec xz -d -f -T0 {} +
chmod +x /tmp/ic/InferenceCheck
nvidia-smi --query-gpu=name,memory.total,clocks.max.sm --format=csv | tee "$out/gpu.txt"
status=0
if [ "$models" != "none" ]; then
  /tmp/ic/InferenceCheck parity /tmp/ic/golden --device cuda:0 --models "$models" 2>&1 | tee "$out/parity_cuda.txt" || status=1
fi
if [ "$bench" = generator ] || [ "$bench" = all ]; then
  # A 10 s clip (250 aligned faces) through LipsyncWindow, fp16, 256/512, DeepCache off/3; with LATENTSYNC=DIR (a
  # checkout of bytedance/LatentSync; diffusers 0.32, einops and PyYAML importable) the same clip through the
  # reference's own pipeline (reference_generator.py), and the ratios.
  : >"$out/generator.jsonl"
  for resolution in 256 512; do
    for cache in 0 3; do
      /tmp/ic/InferenceCheck bench-generator --device cuda:0 --dtype float16 --resolution $resolution --deepcache $cache --iterations 2 --frames 250 \
        2>>"$out/bench.log" | tee -a "$out/generator.jsonl"
      if [ -n "${LATENTSYNC:-}" ]; then
        python3 "$here/reference_generator.py" --latentsync "$LATENTSYNC" --resolution $resolution --deepcache $cache 2>>"$out/bench.log" | tee -a "$out/generator.jsonl"
      fi
    done
  done
  python3 - "$out/generator.jsonl" <<'PY' | tee "$out/generator_summary.txt"
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip().startswith("{")]
for r in (r for r in rows if r.get("impl") == "swift"):
    ref = next((p for p in rows if p.get("impl") == "reference" and p["resolution"] == r["resolution"] and p["deepcache"] == r["deepcache"]), None)
    line = f"{r['resolution']} px, DeepCache {r['deepcache'] or 'off'}: swift {r['clip_frames_per_s']:.2f} frames/s, peak {r['clip_peak_bytes'] / 2**30:.2f} GiB"
    if ref:
        line += f" | reference {ref['frames_per_s']:.2f} frames/s, peak {ref['peak_bytes'] / 2**30:.2f} GiB | ratio {r['clip_frames_per_s'] / ref['frames_per_s']:.2f}"
    print(line)
PY
fi
if [ "$bench" = bench ] || [ "$bench" = all ]; then
  : >"$out/bench.jsonl"
  for dtype in float32 float16 bfloat16; do
    /tmp/ic/InferenceCheck bench --device cuda:0 --dtype $dtype --iterations 20 2>>"$out/bench.log" | tee -a "$out/bench.jsonl"
    python3 "$here/baseline.py" $dtype 20 2>>"$out/bench.log" | tee -a "$out/bench.jsonl"
  done
  python3 "$here/summary.py" "$out/bench.jsonl" | tee "$out/summary.txt"
fi
if [ "$bench" = train ] || [ "$bench" = all ]; then
  : >"$out/train.jsonl"
  for dtype in float16 bfloat16; do
    short=$([ $dtype = float16 ] && echo fp16 || echo bf16)
    /tmp/ic/InferenceCheck bench-train --device cuda:0 --dtype $dtype --batch ${TRAIN_BATCH:-256} --steps ${TRAIN_STEPS:-8} 2>>"$out/bench.log" | tee -a "$out/train.jsonl"
    python3 "$here/train_baseline.py" $short ${TRAIN_BATCH:-256} ${TRAIN_STEPS:-8} 2>>"$out/bench.log" | tee -a "$out/train.jsonl"
  done
  python3 - "$out/train.jsonl" <<'PY' | tee "$out/train_summary.txt"
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip().startswith("{")]
for dtype in ("fp16", "bf16"):
    s = next((r for r in rows if r.get("impl") == "swift" and r.get("dtype") == dtype), None)
    p = next((r for r in rows if r.get("impl") == "pytorch" and r.get("dtype") == dtype), None)
    if not s or not p or "step_s" not in p:
        print(dtype, "incomplete:", s, p); continue
    flops = p["flops_per_step"]
    print(f"{dtype}: batch {s['batch']}  swift {s['step_s']:.3f} s/step {s['samples_per_s']:.0f} samples/s {flops / s['step_s'] / 1e12:.1f} TFLOP/s "
          f"peak {s['peak_mb']} MiB | pytorch {p['step_s']:.3f} s/step {p['samples_per_s']:.0f} samples/s {p['tflops']:.1f} TFLOP/s peak {p['peak_mb']} MiB "
          f"| speed ratio swift/pytorch {p['step_s'] / s['step_s']:.2f}")
PY
fi
exit $status
