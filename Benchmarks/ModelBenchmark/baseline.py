"""PyTorch eager baseline for InferenceCheck's `bench`: the same models (written here from
shared/golden/README.md's descriptions, random weights), the same batches and dtypes, timed the
same way. Prints one JSON line per model, with the FLOPs of one batch (torch's FlopCounterMode)."""
import json
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


def syncnet_v2():
    def conv_bn(cin, cout, k, s=1, p=0, d3=False):
        conv = nn.Conv3d if d3 else nn.Conv2d
        bn = nn.BatchNorm3d if d3 else nn.BatchNorm2d
        return [conv(cin, cout, k, s, p), bn(cout), nn.ReLU()]

    aud = nn.Sequential(*conv_bn(1, 64, 3, 1, 1), nn.MaxPool2d(1, 1), *conv_bn(64, 192, 3, 1, 1), nn.MaxPool2d(3, (1, 2)),
                        *conv_bn(192, 384, 3, 1, 1), *conv_bn(384, 256, 3, 1, 1), *conv_bn(256, 256, 3, 1, 1), nn.MaxPool2d(3, 2),
                        *conv_bn(256, 512, (5, 4)))
    lip = nn.Sequential(*conv_bn(3, 96, (5, 7, 7), (1, 2, 2), 0, True), nn.MaxPool3d((1, 3, 3), (1, 2, 2)),
                        *conv_bn(96, 256, (1, 5, 5), (1, 2, 2), (0, 1, 1), True), nn.MaxPool3d((1, 3, 3), (1, 2, 2), (0, 1, 1)),
                        *conv_bn(256, 256, (1, 3, 3), 1, (0, 1, 1), True), *conv_bn(256, 256, (1, 3, 3), 1, (0, 1, 1), True),
                        *conv_bn(256, 256, (1, 3, 3), 1, (0, 1, 1), True), nn.MaxPool3d((1, 3, 3), (1, 2, 2)),
                        *conv_bn(256, 512, (1, 6, 6), 1, 0, True))

    def fc():
        return nn.Sequential(nn.Linear(512, 512), nn.BatchNorm1d(512), nn.ReLU(), nn.Linear(512, 1024))

    class S(nn.Module):
        def __init__(self):
            super().__init__()
            self.netcnnaud, self.netfcaud, self.netcnnlip, self.netfclip = aud, fc(), lip, fc()

        def forward(self, lip_in, aud_in):
            a = self.netfcaud(self.netcnnaud(aud_in).flatten(1))
            v = self.netfclip(self.netcnnlip(lip_in).flatten(1))
            return v, a
    return S()


class Bottleneck(nn.Module):
    def __init__(self, cin, width, stride):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(cin, width, 1, bias=False), nn.BatchNorm2d(width)
        self.conv2, self.bn2 = nn.Conv2d(width, width, 3, stride, 1, bias=False), nn.BatchNorm2d(width)
        self.conv3, self.bn3 = nn.Conv2d(width, width * 4, 1, bias=False), nn.BatchNorm2d(width * 4)
        self.downsample = None if stride == 1 and cin == width * 4 else nn.Sequential(
            nn.Conv2d(cin, width * 4, 1, stride, bias=False), nn.BatchNorm2d(width * 4))

    def forward(self, x):
        h = F.relu(self.bn1(self.conv1(x)))
        h = F.relu(self.bn2(self.conv2(h)))
        h = self.bn3(self.conv3(h))
        return F.relu(h + (x if self.downsample is None else self.downsample(x)))


class HyperIQA(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(3, 2, 1))
        layers, cin = [], 64
        for i, (blocks, width) in enumerate(zip([3, 4, 6, 3], [64, 128, 256, 512])):
            layers.append(nn.Sequential(*[Bottleneck(cin if j == 0 else width * 4, width, (1 if i == 0 else 2) if j == 0 else 1)
                                          for j in range(blocks)]))
            cin = width * 4
        self.layers = nn.ModuleList(layers)
        self.lda_convs = nn.ModuleList([nn.Conv2d(256 << i, 16 << i, 1, bias=False) for i in range(3)])
        self.lda_fcs = nn.ModuleList([nn.Linear((16 << i) * (64 >> (2 * i)), 16) for i in range(3)] + [nn.Linear(2048, 176)])
        self.hyper = nn.Sequential(nn.Conv2d(2048, 1024, 1), nn.ReLU(), nn.Conv2d(1024, 512, 1), nn.ReLU(), nn.Conv2d(512, 112, 1), nn.ReLU())
        self.widths = [224, 112, 56, 28, 14]
        self.w_convs = nn.ModuleList([nn.Conv2d(112, self.widths[k] * self.widths[k - 1] // 49, 3, padding=1) for k in range(1, 5)])
        self.b_fcs = nn.ModuleList([nn.Linear(112, 1 if k == 5 else self.widths[k]) for k in range(1, 6)])
        self.w5 = nn.Linear(112, 14)

    def forward(self, x):
        b = x.shape[0]
        h, parts = self.stem(x), []
        for i, layer in enumerate(self.layers):
            h = layer(h)
            local = self.lda_convs[i](h) if i < 3 else h
            parts.append(self.lda_fcs[i](F.avg_pool2d(local, 7).flatten(1)))
        q = torch.cat(parts, 1).view(b, 224, 1)
        feat = self.hyper(h)
        pooled = feat.mean((2, 3))
        weights = [conv(feat).view(b, self.widths[k + 1], self.widths[k]) for k, conv in enumerate(self.w_convs)] + [self.w5(pooled).view(b, 1, 14)]
        for k in range(5):
            z = torch.bmm(weights[k], q) + self.b_fcs[k](pooled).unsqueeze(2)
            q = z if k == 4 else torch.sigmoid(z)
        return q.view(b)


def timed(fn, iterations):
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(iterations):
        fn()
    torch.cuda.synchronize()
    return (time.perf_counter() - start) / iterations


def flops(fn):
    from torch.utils.flop_counter import FlopCounterMode
    counter = FlopCounterMode(display=False)
    with counter:
        fn()
    return counter.get_total_flops()


def main():
    dtype_name = sys.argv[1] if len(sys.argv) > 1 else "float32"
    iterations = int(sys.argv[2]) if len(sys.argv) > 2 else 10
    dtype = {"float32": None, "float16": torch.float16, "bfloat16": torch.bfloat16}[dtype_name]
    dev = torch.device("cuda")
    torch.manual_seed(1)

    def run(model, *inputs):
        def call():
            with torch.inference_mode():
                if dtype is None:
                    return model(*inputs)
                with torch.autocast("cuda", dtype=dtype):
                    return model(*inputs)
        return call

    cases = [
        ("syncnet_v2", syncnet_v2(), (torch.rand(245, 3, 5, 224, 224, device=dev) * 255, torch.randn(245, 1, 13, 20, device=dev) * 10),
         "245 windows (one 10 s clip)", 1),
        ("hyperiqa", HyperIQA(), (torch.randn(192, 3, 224, 224, device=dev),), "192 images (64 clips x 3 frames)", 64),
    ]
    for name, model, inputs, batch, clips in cases:
        model = model.to(dev).eval()
        call = run(model, *inputs)
        torch.cuda.reset_peak_memory_stats()
        seconds = timed(call, iterations)
        peak = torch.cuda.max_memory_allocated()
        print(json.dumps({"impl": "pytorch", "model": name, "dtype": dtype_name, "batch": batch, "seconds_per_batch": seconds,
                          "clips_per_s": clips / seconds, "peak_bytes": peak, "flops_per_batch": flops(call),
                          "gpu": torch.cuda.get_device_name(), "torch": torch.__version__}), flush=True)


if __name__ == "__main__":
    main()
