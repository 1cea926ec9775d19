"""Joins InferenceCheck bench's and baseline.py's JSON lines: clips/s, ratio Swift/PyTorch, achieved
TFLOP/s (FLOPs of one batch from PyTorch's counter) against the GPU's dense peak, peak memory."""
import json
import sys

# Dense peaks in TFLOP/s (NVIDIA data sheets, SXM parts): float32 without tensor cores, TF32, 16-bit.
PEAKS = {"H100": {"float32": 67, "tf32": 495, "float16": 989, "bfloat16": 989},
         "H200": {"float32": 67, "tf32": 495, "float16": 989, "bfloat16": 989}}

rows = [json.loads(line) for line in open(sys.argv[1]) if line.startswith("{")]
base = {(r["model"], r["dtype"]): r for r in rows if r["impl"] == "pytorch"}
print(f"{'model':11} {'dtype':9} {'swift clips/s':>13} {'torch clips/s':>13} {'ratio':>6} {'swift TFLOP/s':>13} {'% peak':>7} {'swift peak MB':>13} {'torch peak MB':>13}")
for r in rows:
    if r["impl"] != "swift":
        continue
    b = base.get((r["model"], r["dtype"]))
    if not b:
        continue
    gpu = next((k for k in PEAKS if k in b["gpu"]), "H100")
    peak_key = "tf32" if r["dtype"] == "float32" else r["dtype"]  # cuDNN convolutions use TF32 by default in both
    tflops = b["flops_per_batch"] / r["seconds_per_batch"] / 1e12
    print(f"{r['model']:11} {r['dtype']:9} {r['clips_per_s']:13.2f} {b['clips_per_s']:13.2f} {r['clips_per_s'] / b['clips_per_s']:6.2f} "
          f"{tflops:13.1f} {100 * tflops / PEAKS[gpu][peak_key]:6.1f}% {r['peak_bytes'] / 2**20:13.0f} {b['peak_bytes'] / 2**20:13.0f}")
print(f"GPU: {rows[0].get('gpu', next((r['gpu'] for r in rows if 'gpu' in r), '?'))}, torch {next((r['torch'] for r in rows if 'torch' in r), '?')}")
