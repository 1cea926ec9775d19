"""Builds the small CPython-pickled fixtures embedded (as hex) in TorchCheckpointTests.swift.

PyTorch is not needed: stand-in `torch` modules give CPython's real pickler the same globals and
persistent ids that torch.save uses, so the bytes have CPython's opcode choices (memo BINPUT/BINGET,
protocol 4 FRAME/MEMOIZE/SHORT_BINUNICODE/STACK_GLOBAL) that a hand-written emitter would not.
"""
import collections, io, pickle, struct, sys, types, zipfile

torch = types.ModuleType("torch"); utils = types.ModuleType("torch._utils")
sys.modules["torch"], sys.modules["torch._utils"] = torch, utils
torch._utils = utils

def _rebuild_tensor_v2(*args): raise NotImplementedError
_rebuild_tensor_v2.__module__ = "torch._utils"; utils._rebuild_tensor_v2 = _rebuild_tensor_v2
def _rebuild_parameter(*args): raise NotImplementedError
_rebuild_parameter.__module__ = "torch._utils"; utils._rebuild_parameter = _rebuild_parameter
for name in ("FloatStorage", "HalfStorage", "LongStorage"):
    cls = type(name, (), {}); cls.__module__ = "torch"; setattr(torch, name, cls)

class Storage:
    def __init__(self, key, kind, fmt, values):
        self.key, self.kind, self.raw, self.numel = key, kind, struct.pack("<%d%s" % (len(values), fmt), *values), len(values)

class Tensor:
    def __init__(self, storage, offset, size, stride, parameter=False):
        self.args = (storage, offset, size, stride, False, collections.OrderedDict())
        self.parameter = parameter
    def __reduce_ex__(self, proto):
        if self.parameter:
            return (_rebuild_parameter, (Tensor(*self.args[:4]), True, collections.OrderedDict()))
        return (_rebuild_tensor_v2, self.args)

def make_object():
    a = Storage("140001", torch.FloatStorage, "f", [0, 1, 2, 3, 4, 5])
    b = Storage("140002", torch.FloatStorage, "f", [10, 11, 12, 13, 14, 15, 16, 17])
    h = Storage("140003", torch.HalfStorage, "e", [0.5, -2.0])
    n = Storage("140004", torch.LongStorage, "q", [7, -8, 1 << 40])
    model = collections.OrderedDict()
    model["transposed"] = Tensor(a, 0, (3, 2), (1, 3))        # [[0,3],[1,4],[2,5]]
    model["first"] = Tensor(b, 0, (4,), (1,))                  # 10..13, shares b
    model["second"] = Tensor(b, 4, (2, 2), (2, 1))             # 14..17
    model["half"] = Tensor(h, 0, (2,), (1,), parameter=True)
    model["counts"] = Tensor(n, 0, (3,), (1,))
    model["tied"] = model["first"]                            # same object: a memo BINGET
    model._metadata = collections.OrderedDict([("", {"version": 1})])  # BUILD state, ignored
    obj = {"model": model, "epoch": 3, "lr": 0.25, "name": "run1", "flag": True, "none": None,
           "optimizer": {"state": {0: {"step": 5}}, "param_groups": [{"lr": 0.25, "params": [0, 1]}]},
           "big": 2 ** 70, "negative": -300000}
    return obj, [a, b, h, n]

def pickler(f, protocol, legacy):
    p = pickle.Pickler(f, protocol=protocol)
    def persistent_id(o):
        if isinstance(o, Storage):
            return ("storage", o.kind, o.key, "cpu", o.numel) + ((None,) if legacy else ())
        return None
    p.persistent_id = persistent_id
    return p

def legacy_file():
    obj, storages = make_object()
    f = io.BytesIO()
    pickle.dump(0x1950A86A20F9469CFC6C, f, protocol=2)
    pickle.dump(1001, f, protocol=2)
    pickle.dump({"protocol_version": 1001, "little_endian": True, "type_sizes": {"short": 2, "int": 4, "long": 4}}, f, protocol=2)
    pickler(f, 2, True).dump(obj)
    pickle.dump([s.key for s in storages], f, protocol=2)
    for s in storages:
        f.write(struct.pack("<q", s.numel)); f.write(s.raw)
    return f.getvalue()

def zip_file():
    obj, storages = make_object()
    buf = io.BytesIO(); pickler(buf, 4, False).dump(obj)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_STORED) as z:
        def add(name, data):
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0)); z.writestr(info, data)
        add("mymodel/data.pkl", buf.getvalue())
        add("mymodel/byteorder", b"little")
        for s in storages: add("mymodel/data/" + s.key, s.raw)
        add("mymodel/version", b"3\n")
    return out.getvalue()

for name, data in (("cpythonLegacy", legacy_file()), ("cpythonZip", zip_file())):
    h = data.hex()
    print("    static let %s = \"\"\"" % name)
    for i in range(0, len(h), 120): print("        " + h[i:i + 120])
    print('        """')
