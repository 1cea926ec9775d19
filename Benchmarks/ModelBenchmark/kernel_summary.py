"""Sums the CUDA kernels of a Chrome trace (libtorch's profiler: `InferenceCheck bench-generator --profile`,
or torch.profiler's export_chrome_trace) by kind and lists the costliest ones.

    python3 kernel_summary.py TRACE.json [--top 25]
"""
import argparse
import collections
import json


def kind(name):
    n = name.lower()
    if "fmha" in n or "flash" in n or "attention" in n or "sdpa" in n:
        return "attention"
    if "nchwtonhwc" in n or "nhwctonchw" in n:
        return "layout conversion"
    if "conv" in n or "implicit" in n or "xmma_fprop" in n or "nhwckrsc" in n:
        return "convolution"
    if "gemm" in n or "cutlass" in n or "nvjet" in n or "matmul" in n:
        return "matrix multiply"
    if "norm" in n or "moments" in n or "welford" in n:
        return "normalisation"
    if "concat" in n or "catarraybatched" in n:
        return "concatenation"
    if "copy" in n or "elementwise_kernel<128, 4" in n or "unrolled_elementwise" in n:
        return "copies / strided element-wise"
    return "element-wise / other"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("trace")
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    with open(args.trace) as f:
        events = json.load(f)["traceEvents"]
    kernels = [e for e in events if e.get("cat") == "kernel" and "dur" in e]
    if not kernels:
        print("no CUDA kernels in", args.trace)
        return
    total = sum(e["dur"] for e in kernels)
    span = max(e["ts"] + e["dur"] for e in kernels) - min(e["ts"] for e in kernels)
    print(f"{len(kernels)} kernels, {total / 1e3:.2f} ms of kernel time over a {span / 1e3:.2f} ms span "
          f"(GPU busy {100 * total / span:.0f} %)")
    by_kind = collections.Counter()
    by_name = collections.Counter()
    calls = collections.Counter()
    for e in kernels:
        by_kind[kind(e["name"])] += e["dur"]
        by_name[e["name"]] += e["dur"]
        calls[e["name"]] += 1
    for k, us in by_kind.most_common():
        print(f"  {k:32s} {us / 1e3:8.2f} ms  {100 * us / total:5.1f} %")
    print(f"top {args.top} kernels:")
    for name, us in by_name.most_common(args.top):
        print(f"  {us / 1e3:8.2f} ms {calls[name]:5d}x  {name[:110]}")


if __name__ == "__main__":
    main()
