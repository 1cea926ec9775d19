import Foundation
import Testing
@testable import Inference

// Fixtures are built in code: by this package's writer, by a tiny pickle emitter here (the legacy
// format), and as hex bytes that CPython's own pickler produced (scripts/make-pickle-fixtures.py), so
// the reader also sees opcode choices that this package's writer never makes.

private func data<T>(_ values: [T]) -> Data { values.withUnsafeBufferPointer { Data(buffer: $0) } }

private func bf16(_ values: [Float]) -> Data { data(values.map { UInt16($0.bitPattern >> 16) }) }

/// The message of the WeightError.malformed that `body` throws, or a description of what happened instead.
private func malformedMessage(_ body: () throws -> Void) -> String {
    do {
        try body()
        return "no error"
    } catch let WeightError.malformed(message) {
        return message
    } catch {
        return "unexpected error: \(error)"
    }
}

private func hexData(_ hex: String) -> Data {
    let digits = hex.unicodeScalars.filter { !CharacterSet.whitespacesAndNewlines.contains($0) }.map { UInt8(String($0), radix: 16) ?? 0 }
    return Data(stride(from: 0, to: digits.count - 1, by: 2).map { digits[$0] << 4 | digits[$0 + 1] })
}

/// Every dtype, a 0-d tensor and an empty one; the same tensors scripts/torch-crosscheck.py expects in swift_*.pt.
private func sampleTensors() throws -> [String: HostTensor] {
    [
        "linear.weight": try HostTensor([-1, -0.5, 0, 0.5, 1, 1.5], shape: [2, 3]),
        "linear.bias": try HostTensor(dtype: .f16, shape: [3], bytes: data([UInt16(0x3C00), 0xC000, 0x3800])),  // 1, -2, 0.5
        "norm.scale": try HostTensor(dtype: .bf16, shape: [2, 2], bytes: bf16([1, 2, -3, 0.25])),
        "counts": try HostTensor(dtype: .i64, shape: [3], bytes: data([Int64(1), -2, 1 << 40])),
        "mask": try HostTensor(dtype: .u8, shape: [4], bytes: Data([0, 1, 254, 255])),
        "flags": try HostTensor(dtype: .bool, shape: [2], bytes: Data([1, 0])),
        "doubles": try HostTensor(dtype: .f64, shape: [2], bytes: data([1.5, -2.25])),
        "ints": try HostTensor(dtype: .i32, shape: [2], bytes: data([Int32(7), -7])),
        "shorts": try HostTensor(dtype: .i16, shape: [1], bytes: data([Int16(-3)])),
        "signed": try HostTensor(dtype: .i8, shape: [2], bytes: data([Int8(-1), 5])),
        "step": try HostTensor([3.25], shape: []),
        "empty": try HostTensor([], shape: [0, 4]),
    ]
}

private func zipArchive(_ entries: [(String, Data)], forceZip64: Bool = false) -> Data {
    var writer = TorchZipWriter(forceZip64: forceZip64)
    var out = Data()
    for (name, contents) in entries {
        out.append(writer.localHeader(name: name, contents: contents))
        out.append(contents)
    }
    out.append(writer.centralDirectory())
    return out
}

/// A zip checkpoint whose data.pkl is `pickle` and whose storage "0" holds `storage`.
private func zipCheckpoint(_ pickle: Data, storage: Data = data([Float](repeating: 1, count: 6))) -> Data {
    zipArchive([("archive/data.pkl", pickle), ("archive/data/0", storage), ("archive/version", Data("3\n".utf8))])
}

/// One tensor pickled like the legacy format: the persistent id has a sixth field, the view.
private func legacyTensor(_ p: inout PickleEmitter, key: String, numel: Int, view: (key: String, offset: Int, size: Int)? = nil,
                          offset: Int, shape: [Int], strides: [Int], storage: String = "FloatStorage") {
    p.global("torch._utils", "_rebuild_tensor_v2")
    p.tuple(6) { p in
        p.tuple(6) { p in
            p.string("storage"); p.global("torch", storage); p.string(key); p.string("cpu"); p.int(numel)
            if let view { p.tuple(3) { p in p.string(view.key); p.int(view.offset); p.int(view.size) } } else { p.op(PickleOp.none) }
        }
        p.op(PickleOp.binPersId)
        p.int(offset); p.ints(shape); p.ints(strides)
        p.op(PickleOp.newFalse)
        p.orderedDict()
    }
    p.op(PickleOp.reduce)
}

/// A pickle holding one zip-format tensor over storage "0" (FloatStorage unless told).
private func zipTensorPickle(numel: Int, shape: [Int], strides: [Int], key: String = "0", rebuild: String = "_rebuild_tensor_v2") -> Data {
    var p = PickleEmitter()
    p.global("torch._utils", rebuild)
    p.tuple(6) { p in
        p.tuple(5) { p in p.string("storage"); p.global("torch", "FloatStorage"); p.string(key); p.string("cpu"); p.int(numel) }
        p.op(PickleOp.binPersId)
        p.int(0); p.ints(shape); p.ints(strides); p.op(PickleOp.newFalse); p.orderedDict()
    }
    p.op(PickleOp.reduce)
    p.op(PickleOp.stop)
    return p.bytes
}

@Suite struct TorchCheckpointTests {
    @Test func roundTripFlatStateDict() throws {
        let tensors = try sampleTensors()
        let bytes = try TorchCheckpoint.serialize(tensors)
        let checkpoint = try TorchCheckpoint(data: bytes, source: "flat")
        #expect(checkpoint.tensors == tensors)
        #expect(checkpoint.names == tensors.keys.sorted())
        #expect(checkpoint.scalars.isEmpty)
        #expect(try checkpoint.tensor("step").floats() == [3.25])
        #expect(try checkpoint.tensor("counts").int64s() == [1, -2, 1 << 40])
        #expect(checkpoint.shape(of: "empty") == [0, 4])
        #expect(try TorchCheckpoint.serialize(tensors) == bytes, "equal input gives equal bytes")
        // The pickle names the same globals torch.save does (what weights_only=True allows).
        let pickle = try TorchZipArchive(data: bytes, source: "flat").contents(of: "archive/data.pkl")
        for text in ["ccollections\nOrderedDict\n", "ctorch._utils\n_rebuild_tensor_v2\n", "ctorch\nBFloat16Storage\n", "ctorch\nBoolStorage\n"] {
            #expect(pickle.range(of: Data(text.utf8)) != nil, "pickle lacks \(text)")
        }
        #expect(Array(pickle.prefix(2)) == [0x80, 0x02])
    }

    @Test func roundTripNestedWithExtras() throws {
        let tensors = try sampleTensors()
        let extras: [String: TorchPickleValue] = ["global_step": 1234, "lr": 0.5, "tag": "run", "done": true, "nothing": .null, "big": .int(-(1 << 50))]
        let checkpoint = try TorchCheckpoint(data: try TorchCheckpoint.serialize(tensors, under: "state_dict", extras: extras), source: "nested")
        #expect(checkpoint.names == tensors.keys.sorted().map { "state_dict." + $0 })
        #expect(checkpoint.scalars["global_step"] == 1234)
        #expect(checkpoint.scalars == extras)
        #expect(checkpoint.stateDict(under: ["state_dict.", ""]) == tensors)
        #expect(checkpoint.stateDict(under: ["model_state_dict.", "state_dict."]) == tensors)
        #expect(checkpoint.stateDict(under: ["model."]).isEmpty)
        #expect(checkpoint.stateDict(under: [""]).count == tensors.count)

        // Without a key, extras sit next to the tensors in the one OrderedDict.
        let flat = try TorchCheckpoint(data: try TorchCheckpoint.serialize(tensors, extras: ["epoch": 2]), source: "flat+extras")
        #expect(flat.tensors == tensors)
        #expect(flat.scalars == ["epoch": 2])
    }

    @Test func writerRefusesWhatTorchCannotLoad() {
        let one = ["w": try! HostTensor([1], shape: [1])]
        #expect(malformedMessage { _ = try TorchCheckpoint.serialize(one, under: "sd", extras: ["sd": 1]) }.contains("\"sd\""))
        #expect(malformedMessage { _ = try TorchCheckpoint.serialize(one, extras: ["w": 1]) }.contains("name of a tensor"))
        #expect(malformedMessage { _ = try TorchCheckpoint.serialize(one, extras: ["raw": .bytes(Data([1]))]) }.contains("weights_only"))
    }

    @Test func writesAtomicallyWithAlignedStorages() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("ptwork-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let url = directory.appendingPathComponent("model.pt")
        let tensors = try sampleTensors()
        try TorchCheckpoint.write(["old": try HostTensor([1], shape: [1])], to: url)
        try TorchCheckpoint.write(tensors, under: "state_dict", extras: ["global_step": 1], to: url)  // replaces
        #expect(throws: CocoaError.self) { try TorchCheckpoint.write(tensors, to: directory.appendingPathComponent("absent/model.pt")) }
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory.path) == ["model.pt"], "no temporary left behind")
        let checkpoint = try TorchCheckpoint(contentsOf: url)
        #expect(checkpoint.stateDict(under: ["state_dict."]) == tensors)

        let archive = try TorchZipArchive(data: try Data(contentsOf: url), source: url.path)
        #expect(archive.names == ["archive/data.pkl", "archive/byteorder"] + (0..<tensors.count).map { "archive/data/\($0)" } + ["archive/version"])
        for name in archive.names {
            #expect(try archive.dataOffset(of: name) % 64 == 0, "\(name) is not 64-byte aligned")
            _ = try archive.contents(of: name, verifyingChecksum: true)
        }
        #expect(String(decoding: try archive.contents(of: "archive/version"), as: UTF8.self) == "3\n")

        if case let .unreadable(path, _)? = (#expect(throws: WeightError.self) { try TorchCheckpoint(contentsOf: directory.appendingPathComponent("absent.pt")) }) {
            #expect(path.hasSuffix("absent.pt"))
        } else {
            Issue.record("a missing file should be WeightError.unreadable")
        }
    }

    @Test func forcedZip64ParsesAndIsMarked() throws {
        let tensors = try sampleTensors()
        var bytes = Data()
        try TorchCheckpoint.encode(tensors, under: "state_dict", extras: ["global_step": 9], forceZip64: true) { bytes.append($0) }
        // End record saturated, preceded by the zip64 locator and record.
        let tail = [UInt8](bytes.suffix(22 + 20))
        #expect(tail.prefix(4) == [0x50, 0x4B, 0x06, 0x07])
        #expect(Array(tail[(20 + 8)..<(20 + 12)]) == [0xFF, 0xFF, 0xFF, 0xFF])
        let checkpoint = try TorchCheckpoint(data: bytes, source: "zip64")
        #expect(checkpoint.stateDict(under: ["state_dict."]) == tensors)
        #expect(checkpoint.scalars["global_step"] == 9)
        let archive = try TorchZipArchive(data: bytes, source: "zip64")
        for name in archive.names { #expect(try archive.dataOffset(of: name) % 64 == 0) }
    }

    @Test func legacyFormatHandAssembled() throws {
        let a = data([Float](arrayLiteral: 0, 1, 2, 3, 4, 5))
        let b = data((10...17).map(Float.init))
        let h = data([UInt16(0x3C00), 0x4000])  // f16 1, 2
        var out = PickleEmitter()
        out.raw([PickleOp.long1, 10, 0x6C, 0xFC, 0x9C, 0x46, 0xF9, 0x20, 0x6A, 0xA8, 0x50, 0x19]); out.op(PickleOp.stop)  // magic
        var version = PickleEmitter(); version.int(1001); version.op(PickleOp.stop)
        var info = PickleEmitter()
        info.op(PickleOp.emptyDict); info.op(PickleOp.mark)
        info.string("protocol_version"); info.int(1001); info.string("little_endian"); info.op(PickleOp.newTrue)
        info.op(PickleOp.setItems); info.op(PickleOp.stop)

        var object = PickleEmitter()
        object.op(PickleOp.emptyDict); object.op(PickleOp.mark)
        object.string("model"); object.orderedDict(); object.op(PickleOp.mark)
        object.string("t"); legacyTensor(&object, key: "A", numel: 6, offset: 0, shape: [3, 2], strides: [1, 3])
        object.string("s1"); legacyTensor(&object, key: "B", numel: 8, offset: 0, shape: [4], strides: [1])
        object.string("s2"); legacyTensor(&object, key: "B", numel: 8, offset: 4, shape: [2, 2], strides: [2, 1])
        object.string("view"); legacyTensor(&object, key: "B", numel: 8, view: ("Bv", 2, 4), offset: 1, shape: [2], strides: [1])
        object.string("half"); legacyTensor(&object, key: "H", numel: 2, offset: 0, shape: [2], strides: [1], storage: "HalfStorage")
        object.op(PickleOp.setItems)
        object.string("epoch"); object.int(3)
        object.string("history"); object.op(PickleOp.emptyList); object.op(PickleOp.mark)
        legacyTensor(&object, key: "B", numel: 8, offset: 7, shape: [], strides: [])
        object.float(0.5)
        object.op(PickleOp.appends)
        object.op(PickleOp.setItems); object.op(PickleOp.stop)

        var keys = PickleEmitter()
        keys.op(PickleOp.emptyList); keys.op(PickleOp.mark)
        ["A", "B", "H"].forEach { keys.string($0) }
        keys.op(PickleOp.appends); keys.op(PickleOp.stop)

        var file = out.bytes + version.bytes + info.bytes + object.bytes + keys.bytes
        for storage in [(6, a), (8, b), (2, h)] { file += data([Int64(storage.0)]) + storage.1 }

        let checkpoint = try TorchCheckpoint(data: file, source: "legacy")
        #expect(checkpoint.names == ["history.0", "model.half", "model.s1", "model.s2", "model.t", "model.view"])
        #expect(try checkpoint.tensor("model.t").floats() == [0, 3, 1, 4, 2, 5])
        #expect(checkpoint.tensors["model.t"]?.shape == [3, 2])
        #expect(try checkpoint.tensor("model.s1").floats() == [10, 11, 12, 13])
        #expect(try checkpoint.tensor("model.s2").floats() == [14, 15, 16, 17])
        #expect(try checkpoint.tensor("model.view").floats() == [13, 14], "view starts at element 2, tensor at 1 within it")
        #expect(try checkpoint.tensor("model.half").floats() == [1, 2])
        #expect(try checkpoint.tensor("history.0").floats() == [17])
        #expect(checkpoint.scalars == ["epoch": 3, "history.1": 0.5])

        #expect(malformedMessage { _ = try TorchCheckpoint(data: file.dropLast(5), source: "cut") }.contains("truncated"))
    }

    /// Both fixtures hold the same object, pickled by CPython with stand-ins for torch's globals.
    private func checkCPythonFixture(_ checkpoint: TorchCheckpoint) throws {
        #expect(checkpoint.names == ["model.counts", "model.first", "model.half", "model.second", "model.tied", "model.transposed"])
        #expect(try checkpoint.tensor("model.transposed").floats() == [0, 3, 1, 4, 2, 5])
        #expect(try checkpoint.tensor("model.first").floats() == [10, 11, 12, 13])
        #expect(checkpoint.tensors["model.tied"] == checkpoint.tensors["model.first"])
        #expect(try checkpoint.tensor("model.second").floats() == [14, 15, 16, 17])
        #expect(checkpoint.tensors["model.second"]?.shape == [2, 2])
        #expect(checkpoint.tensors["model.half"] == (try HostTensor(dtype: .f16, shape: [2], bytes: data([UInt16(0x3800), 0xC000]))))
        #expect(try checkpoint.tensor("model.counts").int64s() == [7, -8, 1 << 40])
        let expected: [String: TorchPickleValue] = [
            "epoch": 3, "lr": 0.25, "name": "run1", "flag": true, "none": .null, "negative": -300000,
            "big": .opaque("0x400000000000000000"), "optimizer.state.0.step": 5,
            "optimizer.param_groups.0.lr": 0.25, "optimizer.param_groups.0.params.0": 0, "optimizer.param_groups.0.params.1": 1,
        ]
        #expect(checkpoint.scalars == expected)
    }

    @Test func readsCPythonLegacyPickles() throws {
        try checkCPythonFixture(try TorchCheckpoint(data: hexData(Fixtures.cpythonLegacy), source: "cpython legacy"))
    }

    @Test func readsCPythonProtocol4InPythonZip() throws {
        // Written by Python's zipfile: no alignment padding, archive folder "mymodel", protocol 4 opcodes.
        try checkCPythonFixture(try TorchCheckpoint(data: hexData(Fixtures.cpythonZip), source: "cpython zip"))
    }

    @Test func tensorWrappersAndUnknownObjects() throws {
        var p = PickleEmitter()
        func storageTensor(_ p: inout PickleEmitter, shape: [Int], strides: [Int], offset: Int = 0) {
            p.tuple(6) { p in
                p.tuple(5) { p in p.string("storage"); p.global("torch", "float32"); p.string("0"); p.string("cpu"); p.int(6) }
                p.op(PickleOp.binPersId)
                p.int(offset); p.ints(shape); p.ints(strides); p.op(PickleOp.newFalse); p.orderedDict()
            }
        }
        p.op(PickleOp.emptyDict); p.op(PickleOp.mark)
        // A tensor subclass: _rebuild_from_type_v2(func, type, args, state) applies func to args.
        p.string("subclass"); p.global("torch._tensor", "_rebuild_from_type_v2")
        p.tuple(4) { p in
            p.global("torch._utils", "_rebuild_tensor_v2"); p.global("torch", "Tensor")
            storageTensor(&p, shape: [2], strides: [1], offset: 4)
            p.op(PickleOp.emptyDict)
        }
        p.op(PickleOp.reduce)
        p.string("parameter"); p.global("torch._utils", "_rebuild_parameter_with_state")
        p.tuple(4) { p in
            p.global("torch._utils", "_rebuild_tensor_v2"); storageTensor(&p, shape: [3, 2], strides: [1, 3]); p.op(PickleOp.reduce)
            p.op(PickleOp.newTrue); p.orderedDict(); p.op(PickleOp.emptyDict)
        }
        p.op(PickleOp.reduce)
        p.string("dtype"); p.global("torch", "float16")
        p.string("numpy"); p.global("numpy.core.multiarray", "scalar"); p.tuple(1) { $0.int(5) }; p.op(PickleOp.reduce)
        p.op(PickleOp.setItems); p.op(PickleOp.stop)

        let checkpoint = try TorchCheckpoint(data: zipCheckpoint(p.bytes, storage: data((0..<6).map(Float.init))), source: "wrappers")
        #expect(try checkpoint.tensor("subclass").floats() == [4, 5])
        #expect(try checkpoint.tensor("parameter").floats() == [0, 3, 1, 4, 2, 5])
        #expect(checkpoint.scalars == ["dtype": .opaque("torch.float16"), "numpy": .opaque("numpy.core.multiarray.scalar(5)")])
    }

    @Test func clearErrorsForBrokenFiles() throws {
        let good = try TorchCheckpoint.serialize(try sampleTensors())
        #expect(malformedMessage { _ = try TorchCheckpoint(data: good.prefix(good.count - 30), source: "cut") }.contains("truncated"))
        #expect(malformedMessage { _ = try TorchCheckpoint(data: good.prefix(200), source: "cut") }.contains("truncated"))
        #expect(malformedMessage { _ = try TorchCheckpoint(data: Data("this is not a checkpoint at all".utf8), source: "text") }.contains("not a PyTorch checkpoint"))
        #expect(malformedMessage { _ = try TorchCheckpoint(data: Data(), source: "nothing") }.contains("empty"))
        var tar = Data(count: 1024)
        tar.replaceSubrange(257..<262, with: Data("ustar".utf8))
        #expect(malformedMessage { _ = try TorchCheckpoint(data: tar, source: "tar") }.contains("tar-format torch checkpoint is not supported"))

        // data.pkl marked deflate-compressed, in the local header (method at +8) and central directory (+10).
        var compressed = good
        let archive = try TorchZipArchive(data: good, source: "good")
        guard let entry = archive.entries["archive/data.pkl"], let directory = good.range(of: Data([0x50, 0x4B, 0x01, 0x02])) else {
            Issue.record("no data.pkl entry"); return
        }
        compressed[entry.headerOffset + 8] = 8
        compressed[directory.lowerBound + 10] = 8
        let message = malformedMessage { _ = try TorchCheckpoint(data: compressed, source: "zipped") }
        #expect(message.contains("archive/data.pkl is compressed") && message.contains("deflate"), "\(message)")

        var corrupt = good
        corrupt[try archive.dataOffset(of: "archive/data.pkl") + 3] ^= 0xFF
        #expect(malformedMessage { _ = try TorchCheckpoint(data: corrupt, source: "flipped") }.contains("CRC-32"))

        #expect(malformedMessage { _ = try TorchCheckpoint(data: zipArchive([("a/readme.txt", Data("hi".utf8))]), source: "other zip") }.contains("no data.pkl"))
        #expect(malformedMessage { _ = try TorchCheckpoint(data: Data([0x80, 0x02, 0xFF]), source: "op") }.contains("opcode 0xff at byte 2"))
        #expect(malformedMessage { _ = try TorchCheckpoint(data: Data([0x80, 0x02, 0x4B]), source: "op") }.contains("truncated"))
        #expect(malformedMessage { _ = try TorchCheckpoint(data: Data([0x80, 0x02, 0x4B, 0x01, 0x2E]), source: "int") }.contains("magic number"))

        let pastEnd = zipCheckpoint(zipTensorPickle(numel: 6, shape: [4, 4], strides: [4, 1]))
        #expect(malformedMessage { _ = try TorchCheckpoint(data: pastEnd, source: "short storage") }.contains("reads element 15 of storage 0"))
        let missing = zipCheckpoint(zipTensorPickle(numel: 6, shape: [6], strides: [1], key: "7"))
        #expect(malformedMessage { _ = try TorchCheckpoint(data: missing, source: "no storage") }.contains("storage 7 is missing"))
        let quantized = zipCheckpoint(zipTensorPickle(numel: 6, shape: [6], strides: [1], rebuild: "_rebuild_qtensor"))
        #expect(malformedMessage { _ = try TorchCheckpoint(data: quantized, source: "qtensor") }.contains("torch._utils._rebuild_qtensor"))
    }

    /// Cut and corrupted files must throw, never trap: every read is bounds-checked.
    @Test func survivesTruncationAndCorruption() throws {
        let zip = try TorchCheckpoint.serialize(try sampleTensors(), under: "state_dict", extras: ["step": 3])
        let samples = [zip, hexData(Fixtures.cpythonLegacy), hexData(Fixtures.cpythonZip), hexData(Fixtures.pytorchZip), hexData(Fixtures.pytorchLegacy)]
        var seed: UInt64 = 0x9E37_79B9_7F4A_7C15
        func random(_ n: Int) -> Int {
            seed = seed &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return Int((seed >> 33) % UInt64(n))
        }
        for sample in samples {
            for cut in stride(from: 0, to: sample.count, by: 7) { _ = try? TorchCheckpoint(data: sample.prefix(cut), source: "cut") }
            for _ in 0..<400 {
                var damaged = sample
                for _ in 0..<(1 + random(4)) { damaged[random(damaged.count)] = UInt8(random(256)) }
                _ = try? TorchCheckpoint(data: damaged, source: "damaged")
            }
        }
    }

    /// Real ZIP64 (an entry over 4 GiB, offsets past 4 GiB), too big for every run: set PIPELINED_LARGE_PT_TEST to a
    /// folder (e.g. /tmp) and prefer `swift test -c release --filter largeZip64`. Leaves large.pt there.
    @Test(.enabled(if: ProcessInfo.processInfo.environment["PIPELINED_LARGE_PT_TEST"] != nil))
    func largeZip64() throws {
        let folder = URL(fileURLWithPath: ProcessInfo.processInfo.environment["PIPELINED_LARGE_PT_TEST"] ?? "/tmp")
        let url = folder.appendingPathComponent("large.pt")
        var big = Data(count: (1 << 32) + 4096)
        for i in stride(from: 0, to: big.count, by: 1 << 28) { big[i] = UInt8(truncatingIfNeeded: i >> 28 | 1) }
        big[big.count - 1] = 0xEE
        let tensors = ["big": try HostTensor(dtype: .u8, shape: [big.count], bytes: big), "zsmall": try HostTensor([1, 2, 3], shape: [3])]
        let start = Date()
        try TorchCheckpoint.write(tensors, under: "state_dict", extras: ["global_step": 1], to: url)
        let written = Date()
        let checkpoint = try TorchCheckpoint(contentsOf: url)
        print("large.pt: wrote in \(written.timeIntervalSince(start)) s, read in \(Date().timeIntervalSince(written)) s")
        #expect(checkpoint.tensors["state_dict.big"]?.bytes == big)
        #expect(checkpoint.tensors["state_dict.zsmall"]?.floats() == [1, 2, 3])
        let archive = try TorchZipArchive(data: try Data(contentsOf: url, options: .alwaysMapped), source: url.path)
        #expect(try archive.dataOffset(of: "archive/data/1") > 1 << 32)
        #expect(try archive.dataOffset(of: "archive/data/1") % 64 == 0)
    }

    @Test func crc32MatchesKnownValues() {
        #expect(TorchCRC32.checksum(Data("123456789".utf8)) == 0xCBF4_3926)
        #expect(TorchCRC32.checksum(Data()) == 0)
        // The eight-bytes-at-a-time path agrees with the plain bitwise definition.
        let bytes = Data((0..<1000).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) })
        var crc: UInt32 = 0xFFFF_FFFF
        for byte in bytes {
            crc ^= UInt32(byte)
            for _ in 0..<8 { crc = crc & 1 != 0 ? 0xEDB8_8320 ^ (crc >> 1) : crc >> 1 }
        }
        #expect(TorchCRC32.checksum(bytes) == ~crc)
    }

    /// With PIPELINED_PT_CROSSCHECK_DIR set, or when python3 can import torch here: writes swift_*.pt for
    /// scripts/torch-crosscheck.py, runs it if torch is importable, and reads back the torch_*.pt files it wrote.
    @Test func crossCheckWithPyTorch() throws {
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("scripts/torch-crosscheck.py")
        let hasTorch = Self.run(["python3", "-c", "import torch"]) == 0
        let directory: URL
        if let given = ProcessInfo.processInfo.environment["PIPELINED_PT_CROSSCHECK_DIR"] {
            directory = URL(fileURLWithPath: given)
        } else if hasTorch {
            directory = FileManager.default.temporaryDirectory.appendingPathComponent("ptwork-cross-\(UUID().uuidString)")
        } else {
            return  // no PyTorch on this machine: scripts/torch-crosscheck.py is run elsewhere
        }
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let tensors = try sampleTensors()
        try TorchCheckpoint.write(tensors, to: directory.appendingPathComponent("swift_zip.pt"))
        try TorchCheckpoint.write(tensors, under: "state_dict", extras: ["global_step": 1234, "lr": 0.5, "tag": "swift"],
                                  to: directory.appendingPathComponent("swift_nested.pt"))
        var zip64 = Data()
        try TorchCheckpoint.encode(tensors, under: nil, extras: [:], forceZip64: true) { zip64.append($0) }
        try zip64.write(to: directory.appendingPathComponent("swift_zip64.pt"))
        if hasTorch { #expect(Self.run(["python3", script.path, directory.path]) == 0, "scripts/torch-crosscheck.py failed") }

        for name in ["torch_zip.pt", "torch_legacy.pt"] {
            let url = directory.appendingPathComponent(name)
            guard FileManager.default.fileExists(atPath: url.path) else { continue }
            let checkpoint = try TorchCheckpoint(contentsOf: url)
            Self.checkTorchWritten(checkpoint, name)
            print("read \(url.path): \(checkpoint.names.count) tensors, scalars \(checkpoint.scalars)")
        }
    }

    /// What scripts/torch-crosscheck.py's write_torch_files saves: {"state_dict": OrderedDict(...), "global_step": 7}.
    private static func checkTorchWritten(_ checkpoint: TorchCheckpoint, _ name: String) {
        let sd = checkpoint.stateDict(under: ["state_dict."])
        #expect(sd.keys.sorted() == ["bf16", "counts", "half", "linear.bias", "linear.weight", "param", "scalar", "transposed", "view_a", "view_b"], "\(name)")
        #expect(sd["linear.weight"]?.floats() == [0, 1, 2, 3, 4, 5] && sd["linear.weight"]?.shape == [2, 3], "\(name)")
        #expect(sd["linear.bias"]?.floats() == [0.5, -1.5], "\(name)")
        #expect(sd["half"]?.dtype == .f16 && sd["half"]?.floats() == [0, 0.25, 0.5, 0.75], "\(name)")
        #expect(sd["bf16"]?.dtype == .bf16 && sd["bf16"]?.floats() == [0, 2, 4, 6], "\(name)")
        #expect(sd["transposed"]?.shape == [3, 2] && sd["transposed"]?.floats() == [0, 3, 1, 4, 2, 5], "\(name)")
        #expect(sd["counts"]?.dtype == .i64 && sd["counts"]?.int64s() == [1, -2, 3], "\(name)")
        #expect(sd["scalar"]?.shape == [] && sd["scalar"]?.floats() == [3.5], "\(name)")
        #expect(sd["view_a"]?.floats() == [0, 1, 2, 3], "\(name)")
        #expect(sd["view_b"]?.shape == [2, 2] && sd["view_b"]?.floats() == [4, 5, 6, 7], "\(name)")
        #expect(sd["param"]?.floats() == [1, 1], "\(name)")
        #expect(checkpoint.scalars == ["global_step": 7], "\(name)")
    }

    @Test func readsFilesWrittenByPyTorch() throws {
        // scripts/torch-crosscheck.py's torch.save output under PyTorch 2.11.0: archive folder "torch_zip", with
        // .format_version, .storage_alignment and .data/serialization_id entries, memo BINPUT/BINGET.
        Self.checkTorchWritten(try TorchCheckpoint(data: hexData(Fixtures.pytorchZip), source: "pytorch zip"), "pytorch zip")
        Self.checkTorchWritten(try TorchCheckpoint(data: hexData(Fixtures.pytorchLegacy), source: "pytorch legacy"), "pytorch legacy")
    }

    private static func run(_ arguments: [String]) -> Int32 {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = arguments
        process.standardError = FileHandle.nullDevice
        do { try process.run() } catch { return -1 }
        process.waitUntilExit()
        return process.terminationStatus
    }
}

/// Hex of small files: cpython* from scripts/make-pickle-fixtures.py (CPython 3.11's pickler with
/// stand-in torch globals); pytorch* written by scripts/torch-crosscheck.py with PyTorch 2.11.0.
private enum Fixtures {
    static let cpythonLegacy = """
        80028a0a6cfc9c46f9206aa850192e80024de9032e80027d710028581000000070726f746f636f6c5f76657273696f6e71014de903580d0000006c69
        74746c655f656e6469616e710288580a000000747970655f73697a657371037d710428580500000073686f727471054b025803000000696e7471064b
        0458040000006c6f6e6771074b0475752e80027d71002858050000006d6f64656c710163636f6c6c656374696f6e730a4f726465726564446963740a
        71022952710328580a0000007472616e73706f736564710463746f7263682e5f7574696c730a5f72656275696c645f74656e736f725f76320a710528
        28580700000073746f72616765710663746f7263680a466c6f617453746f726167650a71075806000000313430303031710858030000006370757109
        4b064e74710a514b004b034b0286710b4b014b0386710c8968022952710d74710e52710f580500000066697273747110680528286806680758060000
        00313430303032711168094b084e747112514b004b048571134b018571148968022952711574711652711758060000007365636f6e64711868052828
        68066807681168094b084e747119514b044b024b0286711a4b024b0186711b8968022952711c74711d52711e580400000068616c66711f63746f7263
        682e5f7574696c730a5f72656275696c645f706172616d657465720a712068052828680663746f7263680a48616c6653746f726167650a7121580600
        0000313430303033712268094b024e747123514b004b028571246814896802295271257471265271278868022952712887712952712a580600000063
        6f756e7473712b68052828680663746f7263680a4c6f6e6753746f726167650a712c5806000000313430303034712d68094b034e74712e514b004b03
        85712f68148968022952713074713152713258040000007469656471336817757d713458090000005f6d657461646174617135680229527136580000
        000071377d7138580700000076657273696f6e71394b0173737362580500000065706f6368713a4b0358020000006c72713b473fd000000000000058
        040000006e616d65713c580400000072756e31713d5804000000666c6167713e8858040000006e6f6e65713f4e58090000006f7074696d697a657271
        407d7141285805000000737461746571427d71434b007d714458040000007374657071454b057373580c000000706172616d5f67726f75707371465d
        71477d714828683b473fd00000000000005806000000706172616d7371495d714a284b004b01657561755803000000626967714b8a09000000000000
        00004058080000006e65676174697665714c4a206cfbff752e80025d7100285806000000313430303031710158060000003134303030327102580600
        0000313430303033710358060000003134303030347104652e0600000000000000000000000000803f0000004000004040000080400000a040080000
        000000000000002041000030410000404100005041000060410000704100008041000088410200000000000000003800c00300000000000000070000
        0000000000f8ffffffffffffff0000000000010000
        """
    static let cpythonZip = """
        504b0304140000000000000021002a1aaaebaf020000af020000100000006d796d6f64656c2f646174612e706b6c800495a4020000000000007d9428
        8c056d6f64656c948c0b636f6c6c656374696f6e73948c0b4f72646572656444696374949394295294288c0a7472616e73706f736564948c0c746f72
        63682e5f7574696c73948c125f72656275696c645f74656e736f725f763294939428288c0773746f72616765948c05746f726368948c0c466c6f6174
        53746f726167659493948c06313430303031948c03637075944b067494514b004b034b0286944b014b038694896804295294749452948c0566697273
        749468092828680a680d8c0631343030303294680f4b087494514b004b0485944b018594896804295294749452948c067365636f6e64946809282868
        0a680d6817680f4b087494514b044b024b0286944b024b018694896804295294749452948c0468616c669468078c125f72656275696c645f70617261
        6d6574657294939468092828680a680b8c0b48616c6653746f726167659493948c0631343030303394680f4b027494514b004b028594681a89680429
        529474945294886804295294879452948c06636f756e74739468092828680a680b8c0b4c6f6e6753746f726167659493948c0631343030303494680f
        4b037494514b004b038594681a896804295294749452948c047469656494681d757d948c095f6d657461646174619468042952948c00947d948c0776
        657273696f6e944b01737373628c0565706f6368944b038c026c7294473fd00000000000008c046e616d65948c0472756e31948c04666c616794888c
        046e6f6e65944e8c096f7074696d697a6572947d94288c057374617465947d944b007d948c0473746570944b0573738c0c706172616d5f67726f7570
        73945d947d94286844473fd00000000000008c06706172616d73945d94284b004b01657561758c03626967948a090000000000000000408c086e6567
        6174697665944a206cfbff752e504b030414000000000000002100853de3190600000006000000110000006d796d6f64656c2f627974656f72646572
        6c6974746c65504b0304140000000000000021001790e7911800000018000000130000006d796d6f64656c2f646174612f3134303030310000000000
        00803f0000004000004040000080400000a040504b030414000000000000002100bc163a632000000020000000130000006d796d6f64656c2f646174
        612f3134303030320000204100003041000040410000504100006041000070410000804100008841504b03041400000000000000210084a958900400
        000004000000130000006d796d6f64656c2f646174612f313430303033003800c0504b0304140000000000000021002fe28cf9180000001800000013
        0000006d796d6f64656c2f646174612f3134303030340700000000000000f8ffffffffffffff0000000000010000504b030414000000000000002100
        d19e675502000000020000000f0000006d796d6f64656c2f76657273696f6e330a504b01021403140000000000000021002a1aaaebaf020000af0200
        001000000000000000000000008001000000006d796d6f64656c2f646174612e706b6c504b0102140314000000000000002100853de3190600000006
        0000001100000000000000000000008001dd0200006d796d6f64656c2f627974656f72646572504b01021403140000000000000021001790e7911800
        0000180000001300000000000000000000008001120300006d796d6f64656c2f646174612f313430303031504b0102140314000000000000002100bc
        163a63200000002000000013000000000000000000000080015b0300006d796d6f64656c2f646174612f313430303032504b01021403140000000000
        0000210084a9589004000000040000001300000000000000000000008001ac0300006d796d6f64656c2f646174612f313430303033504b0102140314
        0000000000000021002fe28cf918000000180000001300000000000000000000008001e10300006d796d6f64656c2f646174612f313430303034504b
        0102140314000000000000002100d19e675502000000020000000f000000000000000000000080012a0400006d796d6f64656c2f76657273696f6e50
        4b05060000000007000700be010000590400000000
        """
    static let pytorchZip = """
        504b03040000080800000000000000000000000000000000000012001000746f7263685f7a69702f646174612e706b6c46420c005a5a5a5a5a5a5a5a
        5a5a5a5a80027d710028580a00000073746174655f64696374710163636f6c6c656374696f6e730a4f726465726564446963740a7102295271032858
        0d0000006c696e6561722e776569676874710463746f7263682e5f7574696c730a5f72656275696c645f74656e736f725f76320a7105282858070000
        0073746f72616765710663746f7263680a466c6f617453746f726167650a71075801000000307108580300000063707571094b0674710a514b004b02
        4b0386710b4b034b0186710c8968022952710d74710e52710f580b0000006c696e6561722e6269617371106805282868066807580100000031711168
        094b02747112514b004b028571134b0185711489680229527115747116527117580400000068616c66711868052828680663746f7263680a48616c66
        53746f726167650a7119580100000032711a68094b0474711b514b004b0485711c4b0185711d8968022952711e74711f527120580400000062663136
        712168052828680663746f7263680a42466c6f6174313653746f726167650a7122580100000033712368094b04747124514b004b048571254b018571
        2689680229527127747128527129580a0000007472616e73706f736564712a6805282868066807580100000034712b68094b0674712c514b004b034b
        0286712d4b014b0386712e8968022952712f7471305271315806000000636f756e7473713268052828680663746f7263680a4c6f6e6753746f726167
        650a7133580100000035713468094b03747135514b004b038571364b018571378968022952713874713952713a58060000007363616c6172713b6805
        282868066807580100000036713c68094b0174713d514b0029298968022952713e74713f5271405806000000766965775f6171416805282868066807
        580100000037714268094b08747143514b004b048571444b01857145896802295271467471475271485806000000766965775f627149680528286806
        6807684268094b0874714a514b044b024b0286714b4b024b0186714c8968022952714d74714e52714f5805000000706172616d715063746f7263682e
        5f7574696c730a5f72656275696c645f706172616d657465720a71516805282868066807580100000038715268094b02747153514b004b028571544b
        01857155896802295271567471575271588868022952715987715a52715b75580b000000676c6f62616c5f73746570715c4b07752e504b0708028f03
        217903000079030000504b03040000080800000000000000000000000000000000000019004000746f7263685f7a69702f2e666f726d61745f766572
        73696f6e46423c005a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a
        5a5a5a5a5a5a5a5a31504b0708b7efdc830100000001000000504b0304000008080000000000000000000000000000000000001c003500746f726368
        5f7a69702f2e73746f726167655f616c69676e6d656e74464231005a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a
        5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a3634504b07083f7771e90200000002000000504b030400000808000000000000000000000000000000000000
        13003d00746f7263685f7a69702f627974656f72646572464239005a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a
        5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a6c6974746c65504b0708853de3190600000006000000504b030400000808000000000000
        00000000000000000000000010003c00746f7263685f7a69702f646174612f30464238005a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a
        5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a000000000000803f0000004000004040000080400000a040504b0708
        1790e7911800000018000000504b03040000080800000000000000000000000000000000000010002a00746f7263685f7a69702f646174612f314642
        26005a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a0000003f0000c0bf504b07086d8977d608000000
        08000000504b03040000080800000000000000000000000000000000000010003a00746f7263685f7a69702f646174612f32464236005a5a5a5a5a5a
        5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a000000340038003a504b0708
        b5acf7dd0800000008000000504b03040000080800000000000000000000000000000000000010003a00746f7263685f7a69702f646174612f334642
        36005a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a00000040
        8040c040504b0708052a341d0800000008000000504b03040000080800000000000000000000000000000000000010003a00746f7263685f7a69702f
        646174612f34464236005a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a
        5a5a5a5a000000000000803f0000004000004040000080400000a040504b07081790e7911800000018000000504b0304000008080000000000000000
        0000000000000000000010002a00746f7263685f7a69702f646174612f35464226005a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a
        5a5a5a5a5a5a5a5a5a5a5a5a0100000000000000feffffffffffffff0300000000000000504b07084fb46d951800000018000000504b030400000808
        00000000000000000000000000000000000010002a00746f7263685f7a69702f646174612f36464226005a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a
        5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a00006040504b07082bf565320400000004000000504b030400000808000000000000000000000000
        00000000000010003e00746f7263685f7a69702f646174612f3746423a005a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a
        5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a000000000000803f0000004000004040000080400000a0400000c0400000e040
        504b07087c400a7a2000000020000000504b03040000080800000000000000000000000000000000000010002200746f7263685f7a69702f64617461
        2f3846421e005a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a0000803f0000803f504b0708905106d50800000008000000
        504b03040000080800000000000000000000000000000000000011003900746f7263685f7a69702f76657273696f6e464235005a5a5a5a5a5a5a5a5a
        5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a330a504b0708d19e6755020000000200
        0000504b03040000080800000000000000000000000000000000000020003000746f7263685f7a69702f2e646174612f73657269616c697a6174696f
        6e5f696446422c005a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a3031393737383630
        3335333336393230313434333033373638313436393134373938333836363639504b07089ebd01af2800000028000000504b01020000000008080000
        00000000028f03217903000079030000120000000000000000000000000000000000746f7263685f7a69702f646174612e706b6c504b010200000000
        0808000000000000b7efdc8301000000010000001900000000000000000000000000c9030000746f7263685f7a69702f2e666f726d61745f76657273
        696f6e504b01020000000008080000000000003f7771e902000000020000001c0000000000000000000000000051040000746f7263685f7a69702f2e
        73746f726167655f616c69676e6d656e74504b0102000000000808000000000000853de31906000000060000001300000000000000000000000000d2
        040000746f7263685f7a69702f627974656f72646572504b01020000000008080000000000001790e791180000001800000010000000000000000000
        0000000056050000746f7263685f7a69702f646174612f30504b01020000000008080000000000006d8977d608000000080000001000000000000000
        000000000000e8050000746f7263685f7a69702f646174612f31504b0102000000000808000000000000b5acf7dd0800000008000000100000000000
        000000000000000058060000746f7263685f7a69702f646174612f32504b0102000000000808000000000000052a341d080000000800000010000000
        00000000000000000000d8060000746f7263685f7a69702f646174612f33504b01020000000008080000000000001790e79118000000180000001000
        00000000000000000000000058070000746f7263685f7a69702f646174612f34504b01020000000008080000000000004fb46d951800000018000000
        1000000000000000000000000000e8070000746f7263685f7a69702f646174612f35504b01020000000008080000000000002bf56532040000000400
        0000100000000000000000000000000068080000746f7263685f7a69702f646174612f36504b01020000000008080000000000007c400a7a20000000
        200000001000000000000000000000000000d4080000746f7263685f7a69702f646174612f37504b0102000000000808000000000000905106d50800
        000008000000100000000000000000000000000070090000746f7263685f7a69702f646174612f38504b0102000000000808000000000000d19e6755
        02000000020000001100000000000000000000000000d8090000746f7263685f7a69702f76657273696f6e504b01020000000008080000000000009e
        bd01af28000000280000002000000000000000000000000000520a0000746f7263685f7a69702f2e646174612f73657269616c697a6174696f6e5f69
        64504b06062c000000000000001e032d0000000000000000000f000000000000000f00000000000000cd03000000000000f80a000000000000504b06
        0700000000c50e00000000000001000000504b0506000000000f000f00cd030000f80a00000000
        """
    static let pytorchLegacy = """
        80028a0a6cfc9c46f9206aa850192e80024de9032e80027d710028581000000070726f746f636f6c5f76657273696f6e71014de903580d0000006c69
        74746c655f656e6469616e710288580a000000747970655f73697a657371037d710428580500000073686f727471054b025803000000696e7471064b
        0458040000006c6f6e6771074b0475752e80027d710028580a00000073746174655f64696374710163636f6c6c656374696f6e730a4f726465726564
        446963740a71022952710328580d0000006c696e6561722e776569676874710463746f7263682e5f7574696c730a5f72656275696c645f74656e736f
        725f76320a71052828580700000073746f72616765710663746f7263680a466c6f617453746f726167650a7107580900000034343832323935353271
        08580300000063707571094b064e74710a514b004b024b0386710b4b034b0186710c8968022952710d74710e52710f580b0000006c696e6561722e62
        696173711068052828680668075809000000343537333233343430711168094b024e747112514b004b028571134b0185711489680229527115747116
        527117580400000068616c66711868052828680663746f7263680a48616c6653746f726167650a71195809000000333430393434363838711a68094b
        044e74711b514b004b0485711c4b0185711d8968022952711e74711f527120580400000062663136712168052828680663746f7263680a42466c6f61
        74313653746f726167650a71225809000000343438323436393932712368094b044e747124514b004b048571254b0185712689680229527127747128
        527129580a0000007472616e73706f736564712a68052828680668075809000000343438323235323136712b68094b064e74712c514b004b034b0286
        712d4b014b0386712e8968022952712f7471305271315806000000636f756e7473713268052828680663746f7263680a4c6f6e6753746f726167650a
        71335809000000333430333538373834713468094b034e747135514b004b038571364b018571378968022952713874713952713a5806000000736361
        6c6172713b68052828680668075809000000333433303337303234713c68094b014e74713d514b0029298968022952713e74713f5271405806000000
        766965775f61714168052828680668075809000000343438323330313238714268094b084e747143514b004b048571444b0185714589680229527146
        7471475271485806000000766965775f62714968052828680668075809000000343438323330313238714a68094b084e74714b514b044b024b028671
        4c4b024b0186714d8968022952714e74714f5271505805000000706172616d715163746f7263682e5f7574696c730a5f72656275696c645f70617261
        6d657465720a715268052828680668075809000000343239303832343936715368094b024e747154514b004b028571554b0185715689680229527157
        7471585271598868022952715a87715b52715c75580b000000676c6f62616c5f73746570715d4b07752e80025d710028580900000033343033353837
        383471015809000000333430393434363838710258090000003334333033373032347103580900000034323930383234393671045809000000343438
        323235323136710558090000003434383232393535327106580900000034343832333031323871075809000000343438323436393932710858090000
        003435373332333434307109652e03000000000000000100000000000000feffffffffffffff03000000000000000400000000000000000000340038
        003a01000000000000000000604002000000000000000000803f0000803f0600000000000000000000000000803f0000004000004040000080400000
        a0400600000000000000000000000000803f0000004000004040000080400000a0400800000000000000000000000000803f00000040000040400000
        80400000a0400000c0400000e0400400000000000000000000408040c04002000000000000000000003f0000c0bf
        """
}

// MARK: - Crafted pickles: deep, shared and extreme structures are errors, never crashes or hangs

/// `depth` nested empty lists, the innermost first: `]` × depth, then APPEND × (depth - 1).
private func nestedListsPickle(depth: Int) -> Data {
    Data([PickleOp.proto, 2]) + Data(repeating: PickleOp.emptyList, count: depth) + Data(repeating: PickleOp.append, count: depth - 1) + Data([PickleOp.stop])
}

/// LONG_BINPUT / LONG_BINGET with a 4-byte little-endian memo index.
private func memo(_ op: UInt8, _ index: Int) -> [UInt8] { [op] + (0..<4).map { UInt8(truncatingIfNeeded: index >> (8 * $0)) } }

/// Runs `body` on a thread whose stack is `stackSize` bytes and returns what it returns; a value that
/// is torn down recursively overflows such a stack long before a test thread's.
private func onThread<T: Sendable>(stackSize: Int, _ body: @escaping @Sendable () -> T) -> T {
    let done = DispatchSemaphore(value: 0), box = ThreadResult<T>()
    let thread = Thread {
        box.value = body()
        done.signal()
    }
    thread.stackSize = stackSize
    thread.start()
    done.wait()
    return box.value!
}

/// The result of `onThread`'s body: written by the thread before it signals, read after the wait.
private final class ThreadResult<T>: @unchecked Sendable { var value: T? }

@Suite struct DamagedTorchCheckpointTests {
    /// The 120 KB legacy pickle of 60,000 nested lists from the issue: refused with the file's name,
    /// and destroying what was built so far does not overflow the stack either.
    @Test func sixtyThousandNestedListsAreRefused() throws {
        let bytes = Data([0x80, 0x02]) + Data(repeating: UInt8(ascii: "]"), count: 60000) + Data(repeating: UInt8(ascii: "a"), count: 59999) + Data([UInt8(ascii: ".")])
        #expect(bytes == nestedListsPickle(depth: 60000))
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("\(UUID().uuidString)-deep.pt")
        try bytes.write(to: url)
        defer { try? FileManager.default.removeItem(at: url) }
        let message = malformedMessage { _ = try TorchCheckpoint(contentsOf: url) }
        #expect(message.contains(url.path) && message.contains("more than \(PickleMachine.maxDepth) levels deep") && message.contains("not a torch checkpoint"), "\(message)")
        // The same as a zip checkpoint's data.pkl.
        let zipped = malformedMessage { _ = try TorchCheckpoint(data: zipCheckpoint(bytes), source: "deep.pt") }
        #expect(zipped.contains("deep.pt (archive/data.pkl)") && zipped.contains("levels deep"), "\(zipped)")
    }

    /// Just under the limit a pickle loads (and is destroyed on a small stack); the checkpoint
    /// reader then refuses it cleanly as no state dict. One level more is refused by the machine.
    @Test func nestingJustUnderTheLimitLoadsOrThrowsCleanly() throws {
        let limit = PickleMachine.maxDepth
        for depth in [limit - 1, limit] {
            var machine = PickleMachine(data: nestedListsPickle(depth: depth), source: "under")
            let value = try machine.load()
            #expect(value.depth == depth)
        }
        var over = PickleMachine(data: nestedListsPickle(depth: limit + 1), source: "over.pt")
        #expect(throws: WeightError.self) { _ = try over.load() }
        #expect(malformedMessage { _ = try TorchCheckpoint(data: nestedListsPickle(depth: limit + 1), source: "over.pt") }.contains("levels deep"))

        let legacy = malformedMessage { _ = try TorchCheckpoint(data: nestedListsPickle(depth: limit - 1), source: "under.pt") }
        #expect(legacy.contains("under.pt") && legacy.contains("magic number"), "\(legacy)")
        let zipped = malformedMessage { _ = try TorchCheckpoint(data: zipCheckpoint(nestedListsPickle(depth: limit - 1)), source: "under.pt") }
        #expect(zipped.contains("under.pt") && zipped.contains("nested more than 100 levels deep"), "\(zipped)")

        // Built and dropped on a 128 KiB stack (the main thread has 8 MiB): teardown takes the same
        // stack at any depth.
        let loaded = onThread(stackSize: 128 << 10) {
            [limit - 1, limit].map { depth in
                var machine = PickleMachine(data: nestedListsPickle(depth: depth), source: "small stack")
                return (try? machine.load()) != nil
            }
        }
        #expect(loaded == [true, true])
    }

    /// Destroying a value is iterative: 300,000 levels of every container kind (the kind chosen
    /// at random per level, seeded; the seed is printed) drop on a small stack, and a container still
    /// referenced elsewhere survives its parent with its contents.
    @Test func teardownOfDeepValuesIsIterative() {
        let seed: UInt64 = 0xDEE9_0000_2025_0013
        print("teardownOfDeepValuesIsIterative: seed 0x\(String(seed, radix: 16))")
        let kept = onThread(stackSize: 128 << 10) { () -> [String] in
            var state = seed
            func random(_ n: UInt64) -> UInt64 {
                state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
                return (state >> 33) % n
            }
            let keep = PickleList([.int(42), .list(PickleList([.string("inner")]))])
            var value = PickleValue.list(keep)
            for level in 0..<300_000 {
                switch random(4) {
                case 0: value = .list(PickleList([value, .int(level)]))
                case 1: value = .tuple([.int(level), value])
                case 2:
                    let dict = PickleDict()
                    dict.set(.string("k"), value)
                    value = .dict(dict)
                default: value = .object(PickleObject(maker: "m", args: [value]))
                }
            }
            value = .null
            return keep.items.map { $0.describe() }
        }
        #expect(kept == ["42", "['inner']"], "a container still referenced keeps its contents")
    }

    /// Through the memo a list can be filled after it was put in another, so a chain of 100,000
    /// levels can be built whose recorded depth stays 2: it is refused by the reader's own limit, and
    /// dropped without recursion. A list that holds itself is refused the same way.
    @Test func memoSharedChainsAndCyclesAreRefused() throws {
        let n = 100_000
        var bytes = [PickleOp.proto, 2]
        for i in 0..<n { bytes += [PickleOp.emptyList] + memo(PickleOp.longBinPut, i) + [PickleOp.pop] }
        for i in 0..<(n - 1) { bytes += memo(PickleOp.longBinGet, i) + memo(PickleOp.longBinGet, i + 1) + [PickleOp.append, PickleOp.pop] }
        bytes += memo(PickleOp.longBinGet, 0) + [PickleOp.stop]
        let chain = zipCheckpoint(Data(bytes))
        let message = malformedMessage { _ = try TorchCheckpoint(data: chain, source: "chain.pt") }
        #expect(message.contains("chain.pt") && message.contains("nested more than 100 levels deep"), "\(message)")
        // 512 KiB: the reader's own walk (100 levels) needs more than 128 KiB in a debug build.
        let refused = onThread(stackSize: 512 << 10) { (try? TorchCheckpoint(data: chain, source: "chain.pt")) == nil }
        #expect(refused)

        let cycle = zipCheckpoint(Data([PickleOp.proto, 2, PickleOp.emptyList, PickleOp.binPut, 0, PickleOp.binGet, 0, PickleOp.append, PickleOp.stop]))
        #expect(malformedMessage { _ = try TorchCheckpoint(data: cycle, source: "cycle.pt") }.contains("nested more than 100 levels deep"))
    }

    /// Sharing one list twice per level makes 2^60 paths from a few hundred bytes: the walk stops at
    /// a budget instead of running for ever.
    @Test func exponentialSharingIsBounded() throws {
        var bytes = [PickleOp.proto, 2, PickleOp.emptyList, PickleOp.binPut, 0, PickleOp.pop]
        for i in 1...60 {
            bytes += [PickleOp.emptyList, PickleOp.mark, PickleOp.binGet, UInt8(i - 1), PickleOp.binGet, UInt8(i - 1), PickleOp.appends, PickleOp.binPut, UInt8(i), PickleOp.pop]
        }
        bytes += [PickleOp.binGet, 60, PickleOp.stop]
        let message = malformedMessage { _ = try TorchCheckpoint(data: zipCheckpoint(Data(bytes)), source: "shared.pt") }
        #expect(message.contains("shared.pt") && message.contains("shared many times"), "\(message)")
    }

    // Numbers from the file near Int.max in strides, storage views and zip sizes: errors or correct
    // values, never an overflow trap (also while the error message is written).

    /// A non-contiguous tensor whose size-1 dimension has stride Int.max: elements (i, j, 0) = i + 2j.
    @Test func strideOfIntMaxGathersCorrectly() throws {
        let strided = zipCheckpoint(zipTensorPickle(numel: 4, shape: [2, 2, 1], strides: [1, 2, Int.max]), storage: data([Float](arrayLiteral: 0, 1, 2, 3)))
        let checkpoint = try TorchCheckpoint(data: strided, source: "strided")
        #expect(try checkpoint.tensor("").floats() == [0, 2, 1, 3])
    }

    @Test func storageViewAtIntMaxIsAnError() {
        var p = PickleEmitter()
        p.global("torch._utils", "_rebuild_tensor_v2")
        p.tuple(6) { p in
            p.tuple(6) { p in
                p.string("storage"); p.global("torch", "FloatStorage"); p.string("0"); p.string("cpu"); p.int(6)
                p.tuple(3) { p in p.string("0v"); p.int(Int.max); p.int(1) }
            }
            p.op(PickleOp.binPersId)
            p.int(0); p.ints([1]); p.ints([1]); p.op(PickleOp.newFalse); p.orderedDict()
        }
        p.op(PickleOp.reduce); p.op(PickleOp.stop)
        let view = malformedMessage { _ = try TorchCheckpoint(data: zipCheckpoint(p.bytes), source: "view") }
        #expect(view.contains("from element \(Int.max) of storage 0"), "\(view)")
    }

    @Test func zipEntrySizeOfIntMaxIsAnError() {
        var zip = zipArchive([("archive/data.pkl", zipTensorPickle(numel: 6, shape: [6], strides: [1])), ("archive/data/0", data([Float](repeating: 1, count: 6)))], forceZip64: true)
        guard let directory = zip.range(of: Data([0x50, 0x4B, 0x01, 0x02]), options: .backwards) else { Issue.record("no central directory"); return }
        let nameLength = Int(zip[directory.lowerBound + 28]) | Int(zip[directory.lowerBound + 29]) << 8
        let extra = directory.lowerBound + 46 + nameLength  // zip64 field: id, size, then the two sizes
        zip.replaceSubrange((extra + 4)..<(extra + 20), with: [UInt8](repeating: 0xFF, count: 7) + [0x7F] + [UInt8](repeating: 0xFF, count: 7) + [0x7F])
        let sized = malformedMessage { _ = try TorchCheckpoint(data: zip, source: "sizes") }
        #expect(sized.contains("archive/data/0 needs \(Int.max) bytes"), "\(sized)")
    }
}
