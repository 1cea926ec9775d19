"""Cross-checks TorchCheckpoint.swift against real PyTorch.

Usage: python3 crosscheck.py DIR

1. Loads the Swift-written files in DIR (swift_zip.pt, swift_nested.pt, swift_zip64.pt; written by
   `PIPELINED_PT_CROSSCHECK_DIR=DIR swift test --filter crossCheck`) with torch.load(weights_only=True), and
   with mmap=True where this PyTorch has it (which needs 64-byte aligned storages), prints every
   key's dtype, shape and checksum, and compares the values with what the Swift test wrote.
2. Writes torch_zip.pt (default torch.save) and torch_legacy.pt (_use_new_zipfile_serialization=False)
   for the Swift test to read back: run the same swift test command again afterwards.

Exits 1 if any Swift-written file fails to load or differs.
"""
import os
import sys
from collections import OrderedDict

import torch


def expected_swift_tensors():
    """The tensors of sampleTensors() in TorchCheckpointTests.swift."""
    return {
        "linear.weight": torch.tensor([[-1, -0.5, 0], [0.5, 1, 1.5]], dtype=torch.float32),
        "linear.bias": torch.tensor([1, -2, 0.5], dtype=torch.float16),
        "norm.scale": torch.tensor([[1, 2], [-3, 0.25]], dtype=torch.bfloat16),
        "counts": torch.tensor([1, -2, 1 << 40], dtype=torch.int64),
        "mask": torch.tensor([0, 1, 254, 255], dtype=torch.uint8),
        "flags": torch.tensor([True, False]),
        "doubles": torch.tensor([1.5, -2.25], dtype=torch.float64),
        "ints": torch.tensor([7, -7], dtype=torch.int32),
        "shorts": torch.tensor([-3], dtype=torch.int16),
        "signed": torch.tensor([-1, 5], dtype=torch.int8),
        "step": torch.tensor(3.25, dtype=torch.float32),
        "empty": torch.zeros((0, 4), dtype=torch.float32),
    }


def checksum(t):
    return float(t.double().sum()) if t.numel() else 0.0


def describe(obj, prefix=""):
    if isinstance(obj, dict):
        for k, v in obj.items():
            describe(v, f"{prefix}{k}.")
    elif isinstance(obj, torch.Tensor):
        print(f"  {prefix[:-1]}: {obj.dtype} {tuple(obj.shape)} sum={checksum(obj)} contiguous={obj.is_contiguous()}")
    else:
        print(f"  {prefix[:-1]}: {obj!r}")


def check_swift_file(path, state_dict_key, extras):
    ok = True
    loads = [("weights_only", {})]
    try:
        torch.load(path, weights_only=True, mmap=True)
        loads.append(("weights_only+mmap", {"mmap": True}))
    except TypeError:
        print(f"  (this PyTorch has no mmap=True; skipped)")
    except Exception as e:
        print(f"FAIL {path}: mmap load: {type(e).__name__}: {e}")
        ok = False
    for label, kwargs in loads:
        try:
            obj = torch.load(path, weights_only=True, **kwargs)
        except Exception as e:
            print(f"FAIL {path} ({label}): {type(e).__name__}: {e}")
            return False
        print(f"{path} ({label}): {type(obj).__name__}")
        describe(obj)
        sd = obj[state_dict_key] if state_dict_key else obj
        if state_dict_key is None and type(obj) is not OrderedDict:
            print(f"FAIL {path}: top level is {type(obj).__name__}, expected OrderedDict")
            ok = False
        expected = expected_swift_tensors()
        if sorted(sd.keys()) != sorted(expected.keys()):
            print(f"FAIL {path}: keys {sorted(sd.keys())} != {sorted(expected.keys())}")
            ok = False
        for k, want in expected.items():
            got = sd.get(k)
            if got is None or got.dtype != want.dtype or got.shape != want.shape or not torch.equal(got, want):
                print(f"FAIL {path}: {k} = {got!r}, expected {want!r}")
                ok = False
        for k, want in extras.items():
            if obj.get(k) != want:
                print(f"FAIL {path}: extra {k} = {obj.get(k)!r}, expected {want!r}")
                ok = False
    return ok


def write_torch_files(directory):
    base = torch.arange(8, dtype=torch.float32)
    sd = OrderedDict()
    sd["linear.weight"] = torch.arange(6, dtype=torch.float32).reshape(2, 3)
    sd["linear.bias"] = torch.tensor([0.5, -1.5])
    sd["half"] = torch.arange(4, dtype=torch.float16) / 4
    sd["bf16"] = torch.arange(4, dtype=torch.bfloat16) * 2
    sd["transposed"] = torch.arange(6, dtype=torch.float32).reshape(2, 3).t()  # stride (1, 3)
    sd["counts"] = torch.tensor([1, -2, 3], dtype=torch.int64)
    sd["scalar"] = torch.tensor(3.5)
    sd["view_a"] = base[:4]  # view_a and view_b share one storage, view_b at offset 4
    sd["view_b"] = base[4:].view(2, 2)
    sd["param"] = torch.nn.Parameter(torch.ones(2))  # pickled through _rebuild_parameter
    obj = {"state_dict": sd, "global_step": 7}
    for name, kwargs in (("torch_zip.pt", {}), ("torch_legacy.pt", {"_use_new_zipfile_serialization": False})):
        try:
            torch.save(obj, os.path.join(directory, name), **kwargs)
            print(f"wrote {name} in {directory} (PyTorch {torch.__version__})")
        except Exception as e:
            print(f"could not write {name} with PyTorch {torch.__version__}: {type(e).__name__}: {e}")


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    directory = sys.argv[1]
    ok = True
    for name, key, extras in (
        ("swift_zip.pt", None, {}),
        ("swift_nested.pt", "state_dict", {"global_step": 1234, "lr": 0.5, "tag": "swift"}),
        ("swift_zip64.pt", None, {}),
    ):
        path = os.path.join(directory, name)
        if os.path.exists(path):
            ok = check_swift_file(path, key, extras) and ok
        else:
            print(f"(no {path}; run PIPELINED_PT_CROSSCHECK_DIR={directory} swift test --filter crossCheck first)")
    write_torch_files(directory)
    print("OK" if ok else "FAILED")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
