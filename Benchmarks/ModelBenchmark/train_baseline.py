"""PyTorch eager baseline for the StableSyncNet *training* step benchmark: the shipped
`syncnet_16_pixel_attn` model written here from shared/reference/latentsync.md §2.3 (random weights),
trained the way §2.4 describes (BCE on the cosine, AdamW, grad clip 1.0, fp16 GradScaler, accumulation).
  python3 train_baseline.py DTYPE BATCH STEPS [ACCUM]     DTYPE: fp16 | bf16 | no (float32)
Prints one JSON line to stdout (logs go to stderr); a CUDA OOM prints a JSON line with "error":"oom".
`--cpu-smoke` (hidden) builds the model and runs one float32 step with batch 2 on the CPU."""
import json
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


def gn(c):
    return nn.GroupNorm(32, c, eps=1e-6)


class ResnetBlock2D(nn.Module):
    """GN→SiLU→conv→GN→SiLU→conv + shortcut, *then* the (optional) asymmetric-pad strided conv."""

    def __init__(self, cin, cout, factor):
        super().__init__()
        self.norm1, self.conv1 = gn(cin), nn.Conv2d(cin, cout, 3, 1, 1)
        self.norm2, self.conv2 = gn(cout), nn.Conv2d(cout, cout, 3, 1, 1)
        self.shortcut = nn.Conv2d(cin, cout, 1) if cin != cout else None
        self.factor = factor
        self.down = None
        if factor != 1:
            # F.pad order is (left, right, top, bottom); the tuple factor is (stride_h, stride_w).
            if isinstance(factor, int):
                self.pad = (0, 1, 0, 1)
            elif factor[0] == 1:
                self.pad = (0, 1, 1, 1)
            elif factor[1] == 1:
                self.pad = (1, 1, 0, 1)
            else:
                self.pad = (0, 1, 0, 1)
            self.down = nn.Conv2d(cout, cout, 3, stride=factor, padding=0)

    def forward(self, x):
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(F.silu(self.norm2(h)))  # dropout(0) is the identity
        h = h + (x if self.shortcut is None else self.shortcut(x))
        return h if self.down is None else self.down(F.pad(h, self.pad))


class AttentionBlock2D(nn.Module):
    """GN → 1x1 conv → tokens → x+Attn(LN x) → x+GEGLU-FF(LN x) → map → 1x1 conv → + input."""

    def __init__(self, c, heads=8):
        super().__init__()
        self.heads = heads
        self.norm, self.conv_in, self.conv_out = gn(c), nn.Conv2d(c, c, 1), nn.Conv2d(c, c, 1)
        self.norm1, self.norm2 = nn.LayerNorm(c), nn.LayerNorm(c)
        self.to_q, self.to_k, self.to_v, self.to_out = (nn.Linear(c, c) for _ in range(4))
        self.ff_in, self.ff_out = nn.Linear(c, 8 * c), nn.Linear(4 * c, c)  # GEGLU: C→2·4C, then 4C→C

    def forward(self, x):
        b, c, hh, ww = x.shape
        t = self.conv_in(self.norm(x)).flatten(2).transpose(1, 2)  # (B, HW, C)
        n = self.norm1(t)
        q, k, v = (p(n).view(b, -1, self.heads, c // self.heads).transpose(1, 2) for p in (self.to_q, self.to_k, self.to_v))
        t = t + self.to_out(F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, -1, c))
        h, gate = self.ff_in(self.norm2(t)).chunk(2, dim=-1)
        t = t + self.ff_out(h * F.gelu(gate))  # exact (erf) GELU
        return self.conv_out(t.transpose(1, 2).reshape(b, c, hh, ww)) + x


class DownEncoder2D(nn.Module):
    def __init__(self, cin, channels, factors, attn_after):
        super().__init__()
        self.conv_in = nn.Conv2d(cin, channels[0], 3, 1, 1)
        blocks, prev = [], channels[0]
        for i, (c, f) in enumerate(zip(channels, factors)):
            blocks.append(ResnetBlock2D(prev, c, f))
            if i in attn_after:
                blocks.append(AttentionBlock2D(c))
            prev = c
        self.down_blocks = nn.Sequential(*blocks)
        self.norm_out = gn(channels[-1])

    def forward(self, x):
        h = F.relu(self.norm_out(self.down_blocks(self.conv_in(x))))  # (B, D, 1, 1), non-negative
        return F.normalize(h.flatten(1), dim=1)  # eps 1e-12


class StableSyncNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.audio_encoder = DownEncoder2D(1, [32, 64, 128, 256, 512, 1024, 2048],
                                           [(2, 1), 2, 2, 1, 2, 2, (2, 3)], {3, 4})
        self.visual_encoder = DownEncoder2D(48, [64, 128, 256, 256, 512, 1024, 2048, 2048],
                                            [(1, 2), 2, 2, 2, 2, 2, 2, 2], {4, 5})

    def forward(self, frames, mel):
        return self.visual_encoder(frames), self.audio_encoder(mel)


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def main():
    smoke = "--cpu-smoke" in sys.argv
    args = [a for a in sys.argv[1:] if a != "--cpu-smoke"]
    dtype_name = "no" if smoke else args[0] if args else "fp16"
    batch = 2 if smoke else int(args[1]) if len(args) > 1 else 32
    steps = 1 if smoke else int(args[2]) if len(args) > 2 else 10
    accum = 1 if smoke else int(args[3]) if len(args) > 3 else 1
    dtype = None if smoke else {"fp16": torch.float16, "bf16": torch.bfloat16, "no": None}[dtype_name]
    dev = torch.device("cpu" if smoke else "cuda:0")
    result = {"impl": "pytorch", "model": "stable_syncnet_train", "dtype": dtype_name, "batch": batch,
              "accumulation": accum, "steps": steps}
    torch.manual_seed(42)
    torch.backends.cudnn.benchmark = True  # TF32 flags deliberately left at PyTorch's defaults
    try:
        model = StableSyncNet().to(dev).train()
        params = sum(p.numel() for p in model.parameters())
        log(f"StableSyncNet parameters: {params:,} (audio {sum(p.numel() for p in model.audio_encoder.parameters()):,}, "
            f"visual {sum(p.numel() for p in model.visual_encoder.parameters()):,})")
        with torch.no_grad():  # both towers must collapse to (B, 2048) at the real input sizes
            v, a = model(torch.zeros(2, 48, 128, 256, device=dev), torch.zeros(2, 1, 80, 52, device=dev))
        assert v.shape == (2, 2048) and a.shape == (2, 2048), (v.shape, a.shape)

        # Data generated once on the device so that loading is excluded; every micro-batch of an
        # accumulated step reuses it (the cost of a step does not depend on the values).
        frames = torch.rand(batch, 48, 128, 256, device=dev) * 2 - 1
        mel = torch.rand(batch, 1, 80, 52, device=dev) * 8 - 4
        y = (torch.arange(batch, device=dev) % 2).float()

        # torch's default AdamW (the multi-tensor `foreach` path on CUDA), as the reference's script creates it.
        opt = torch.optim.AdamW(model.parameters(), lr=1e-5, weight_decay=0.01)
        scaler = torch.amp.GradScaler(dev.type, enabled=dtype == torch.float16)  # fp16 only, as upstream
        losses = []

        def micro():
            with torch.autocast(dev.type, dtype=dtype or torch.float32, enabled=dtype is not None):
                v, a = model(frames, mel)
                cos = (v * a).sum(1)
            # BCE is autocast-unsafe; upstream computes it in float32. Clamp guards fp16 rounding past 1.
            loss = F.binary_cross_entropy(cos.float().clamp(0, 1), y) / accum
            scaler.scale(loss).backward()
            return loss.detach()

        def step():
            losses.append(sum(micro() for _ in range(accum)))
            scaler.unscale_(opt)  # clip on true gradients
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            scaler.step(opt)
            scaler.update()
            opt.zero_grad(set_to_none=True)

        # FLOPs of one micro-batch forward+backward (the optimiser's elementwise work is not counted).
        from torch.utils.flop_counter import FlopCounterMode
        counter = FlopCounterMode(display=False)
        with counter:
            micro()
        opt.zero_grad(set_to_none=True)
        flops_per_step = counter.get_total_flops() * accum

        sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
        for _ in range(0 if smoke else 2):  # warm-up: cudnn autotuning, allocator, optimiser state
            step()
        sync()
        if dev.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
        start = time.perf_counter()
        for _ in range(steps):
            step()
        sync()
        elapsed = time.perf_counter() - start
        peak = torch.cuda.max_memory_allocated() / 2**20 if dev.type == "cuda" else 0.0
        log(f"losses (warm-up + timed steps): {[round(float(l), 5) for l in losses]}")
        result.update({"step_s": elapsed / steps, "samples_per_s": batch * accum * steps / elapsed, "peak_mb": peak,
                       "flops_per_step": flops_per_step, "tflops": flops_per_step * steps / elapsed / 1e12,
                       "params": params, "device": torch.cuda.get_device_name() if dev.type == "cuda" else "cpu",
                       "torch": torch.__version__})
        if smoke:
            assert all(torch.isfinite(l) for l in losses)
    except torch.cuda.OutOfMemoryError:
        result["error"] = "oom"
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
