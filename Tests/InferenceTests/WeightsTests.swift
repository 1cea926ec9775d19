import Foundation
import Inference
import PipelineTestSupport
import Testing

/// Safetensors reading and writing, and strict loading, on the golden checkpoints.
@Suite struct WeightsTests {
    static func golden(_ path: String) throws -> SafeTensors {
        try SafeTensors(contentsOf: Golden.directory.appendingPathComponent(path))
    }

    /// SyncNet v2's golden checkpoint: 102 tensors (F16 weights, I64 batch counters) and the
    /// 13,631,616 parameters its README states (running statistics are buffers).
    @Test func readsTheGoldenSyncNetCheckpoint() throws {
        let archive = try Self.golden("syncnet_v2/weights.safetensors")
        #expect(archive.entries.count == 102)
        let loader = StrictLoader(archive)
        for name in archive.names where !name.hasSuffix("num_batches_tracked") {
            let isBuffer = name.hasSuffix("running_mean") || name.hasSuffix("running_var")
            _ = try loader.take(WeightPath(name.split(separator: ".").map(String.init)), isBuffer: isBuffer)
        }
        let report = try loader.finish(ignoring: [".num_batches_tracked"])
        #expect(report.parameters == 13_631_616 && report.tensors == 88 && report.ignored.count == 14, "\(report)")
    }

    /// F16 → F32 is exact, for every one of the 65,536 half-precision bit patterns.
    @Test func halfPrecisionWidensExactly() throws {
        let bits = (0...UInt16.max).map { $0 }
        let tensor = try HostTensor(dtype: .f16, shape: [bits.count], bytes: bits.withUnsafeBufferPointer { Data(buffer: $0) })
        let floats = tensor.floats()
        for (b, f) in zip(bits, floats) {
            let half = Float16(bitPattern: b)
            if half.isNaN { #expect(f.isNaN) } else { try #require(f == Float(half), "half \(String(b, radix: 16))") }
        }
    }

    /// Written by us, read back: the same names, types, shapes, bytes and metadata; and the bytes
    /// equal what the golden file stores for the tensors copied from it.
    @Test func roundTripIsIdentical() throws {
        let golden = try Self.golden("syncnet_v2/weights.safetensors")
        var tensors: [String: HostTensor] = [:]
        for name in golden.names.prefix(12) { tensors[name] = try golden.tensor(name) }
        tensors["extra.f32"] = try HostTensor([1.5, -2, .pi, 0, -0.0, .greatestFiniteMagnitude], shape: [2, 3])
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("roundtrip-\(UUID().uuidString).safetensors")
        defer { try? FileManager.default.removeItem(at: url) }
        try SafeTensors.write(tensors, metadata: ["format": "pt", "step": "7"], to: url)
        let back = try SafeTensors(contentsOf: url)
        #expect(Set(back.names) == Set(tensors.keys) && back.metadata == ["format": "pt", "step": "7"])
        for (name, tensor) in tensors { #expect(try back.tensor(name) == tensor, "\(name)") }
        // The header is padded so that the data starts 8-byte aligned.
        let data = try Data(contentsOf: url)
        let headerLength = data.prefix(8).enumerated().reduce(0) { $0 | Int($1.element) << (8 * $1.offset) }
        #expect((8 + headerLength) % 8 == 0)
    }

    /// A missing key, a wrong shape and an unused key each fail with the key's name.
    @Test func strictLoadingNamesTheKey() throws {
        let w = try HostTensor([Float](repeating: 0, count: 6), shape: [2, 3]), b = try HostTensor([0, 0], shape: [2])
        let archive = try SafeTensors(data: SafeTensors.serialize(["fc.weight": w, "fc.bias": b, "fc.extra": b]))
        let fc = WeightPath()("fc")
        #expect(throws: WeightError.missing(key: "fc.wieght", similar: ["fc.bias", "fc.extra", "fc.weight"])) { try StrictLoader(archive).take(fc("wieght")) }
        #expect(throws: WeightError.shapeMismatch(key: "fc.weight", expected: [3, 2], found: [2, 3])) { try StrictLoader(archive).take(fc("weight"), shape: [3, 2]) }
        let loader = StrictLoader(archive)
        _ = try loader.take(fc("weight"), shape: [2, 3])
        _ = try loader.take(fc("bias"), shape: [2])
        #expect(throws: WeightError.unexpected(keys: ["fc.extra"])) { try loader.finish() }
        #expect(String(describing: WeightError.unexpected(keys: ["fc.extra"])).contains("fc.extra"))
        #expect(WeightPath()("netcnnaud")[1]("running_mean").key == "netcnnaud.1.running_mean")
    }

    /// Damaged files are errors that say what is wrong, never crashes.
    @Test func malformedFilesAreClearErrors() throws {
        let good = try SafeTensors.serialize(["a": try HostTensor([1, 2], shape: [2])])
        #expect(throws: WeightError.self) { try SafeTensors(data: Data(good.prefix(5))) }
        #expect(throws: WeightError.self) { try SafeTensors(data: Data(good.dropLast(4))) }
        var bogus = good
        bogus[0] = 0xFF
        #expect(throws: WeightError.self) { try SafeTensors(data: bogus) }
        let error = #expect(throws: WeightError.self) { try SafeTensors(contentsOf: URL(fileURLWithPath: "/nonexistent.safetensors")) }
        #expect(error.map(String.init(describing:))?.contains("/nonexistent.safetensors") == true)
    }
}
