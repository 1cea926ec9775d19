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
        // A header nested 100,000 levels deep is refused by the JSON reader, not a stack overflow.
        let deep = String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000)
        let nested = craftedSafeTensors(#"{"w":{"dtype":"F32","shape":\#(deep),"data_offsets":[0,0]}}"#)
        #expect(weightErrorText { _ = try SafeTensors(data: nested, source: "nested.safetensors") }.contains("nested.safetensors"))
        let error = #expect(throws: WeightError.self) { try SafeTensors(contentsOf: URL(fileURLWithPath: "/nonexistent.safetensors")) }
        #expect(error.map(String.init(describing:))?.contains("/nonexistent.safetensors") == true)
    }
}

// MARK: - Crafted headers (numbers from the file never trap) and key errors that name the file

/// A safetensors file whose JSON header is `header`, verbatim, followed by `payload` zero bytes.
private func craftedSafeTensors(_ header: String, payload: Int = 8) -> Data {
    var out = Data()
    withUnsafeBytes(of: UInt64(header.utf8.count).littleEndian) { out.append(contentsOf: $0) }
    return out + Data(header.utf8) + Data(count: payload)
}

/// `bytes` written to a fresh temporary file named `name`, passed to `body`, then removed.
private func withTemporaryFile<T>(_ bytes: Data, named name: String, _ body: (URL) throws -> T) throws -> T {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("\(UUID().uuidString)-\(name)")
    try bytes.write(to: url)
    defer { try? FileManager.default.removeItem(at: url) }
    return try body(url)
}

/// The description of the WeightError that `body` throws, or what happened instead.
private func weightErrorText(_ body: () throws -> Void) -> String {
    do {
        try body()
        return "no error"
    } catch let error as WeightError {
        return String(describing: error)
    } catch {
        return "not a WeightError: \(error)"
    }
}

/// SplitMix64: a seeded generator, so that a failing run can be repeated from the printed seed.
private struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

@Suite struct DamagedWeightsTests {
    /// Element counts × element sizes that overflow 64 bits are errors naming the file and the tensor
    /// (the product used to trap: a 100-byte file crashed `infer`, `run`, `doctor` and `eval`).
    @Test func overflowingShapeIsAnErrorNamingFileAndTensor() throws {
        for shape in ["[4294967296, 4294967296]", "[3037000500, 3037000500]", "[4611686018427387904]", "[9223372036854775807, 2]", "[9223372036854775807, 9223372036854775807, 0]"] {
            let file = craftedSafeTensors(#"{"big.weight":{"dtype":"F32","shape":\#(shape),"data_offsets":[0,8]}}"#)
            let text = try withTemporaryFile(file, named: "overflow.safetensors") { url in
                (url.path, weightErrorText { _ = try SafeTensors(contentsOf: url) })
            }
            #expect(text.1.contains(text.0) && text.1.contains("\"big.weight\"") && text.1.contains("overflows") && text.1.contains("damaged"), "\(shape): \(text.1)")
        }
    }

    @Test func negativeDimensionIsNamed() throws {
        let file = craftedSafeTensors(#"{"fc.bias":{"dtype":"F32","shape":[2,-1],"data_offsets":[0,8]}}"#)
        let (path, text) = try withTemporaryFile(file, named: "negative.safetensors") { url in
            (url.path, weightErrorText { _ = try SafeTensors(contentsOf: url) })
        }
        #expect(text.contains(path) && text.contains("\"fc.bias\"") && text.contains("negative dimension") && text.contains("[2, -1]"), "\(text)")
        // Negative and huge together: the negative dimension is reported, nothing overflows first.
        let mixed = craftedSafeTensors(#"{"w":{"dtype":"F64","shape":[9223372036854775807,-9223372036854775807,4],"data_offsets":[0,8]}}"#)
        let message = weightErrorText { _ = try SafeTensors(data: mixed, source: "mixed.safetensors") }
        #expect(message.contains("mixed.safetensors") && message.contains("negative dimension"), "\(message)")
    }

    /// Offsets beyond the data, offsets that disagree with the shape, and header lengths beyond the
    /// file each say which it is.
    @Test func offsetsAndLengthsPastTheEndAreNamed() throws {
        let pastEnd = craftedSafeTensors(#"{"conv.weight":{"dtype":"F32","shape":[1024],"data_offsets":[0,4096]}}"#)
        let (path, text) = try withTemporaryFile(pastEnd, named: "past-end.safetensors") { url in
            (url.path, weightErrorText { _ = try SafeTensors(contentsOf: url) })
        }
        #expect(text.contains(path) && text.contains("\"conv.weight\"") && text.contains("past the end") && text.contains("8 bytes"), "\(text)")

        let farPastEnd = craftedSafeTensors(#"{"w":{"dtype":"U8","shape":[8],"data_offsets":[9223372036854775800,9223372036854775807]}}"#)
        let far = weightErrorText { _ = try SafeTensors(data: farPastEnd, source: "far.safetensors") }
        #expect(far.contains("far.safetensors") && far.contains("\"w\"") && far.contains("past the end"), "\(far)")

        let disagree = craftedSafeTensors(#"{"w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}"#)
        let size = weightErrorText { _ = try SafeTensors(data: disagree, source: "size.safetensors") }
        #expect(size.contains("size.safetensors") && size.contains("\"w\"") && size.contains("needs 12 bytes") && size.contains("span 8"), "\(size)")

        let backwards = craftedSafeTensors(#"{"w":{"dtype":"U8","shape":[0],"data_offsets":[8,0]}}"#)
        #expect(weightErrorText { _ = try SafeTensors(data: backwards, source: "b") }.contains("not an increasing pair"))

        var longHeader = craftedSafeTensors(#"{"w":{"dtype":"U8","shape":[8],"data_offsets":[0,8]}}"#)
        longHeader.replaceSubrange(0..<8, with: [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF])
        let header = weightErrorText { _ = try SafeTensors(data: longHeader, source: "header.safetensors") }
        #expect(header.contains("header.safetensors") && header.contains("header length 18446744073709551615 runs past the end"), "\(header)")
    }

    /// Random headers (seeded; the seed is printed) with dimensions and offsets near every limit:
    /// each is read or refused with an error naming the file and the tensor, never a trap.
    @Test func randomExtremeHeadersNeverTrap() throws {
        let seed: UInt64 = 0x5AFE_7E45_0125_2025
        print("randomExtremeHeadersNeverTrap: seed 0x\(String(seed, radix: 16))")
        var random = SplitMix64(state: seed)
        let dims: [Int] = [0, 1, 2, 3, 7, 1 << 31, 1 << 32, 3_037_000_500, 1 << 61, 1 << 62, Int.max, -1, -(1 << 32), Int.min + 1]
        let dtypes = StoredDType.allCases.map(\.rawValue)
        var read = 0
        for round in 0..<2000 {
            let payload = Int.random(in: 0...64, using: &random)
            let shape = (0..<Int.random(in: 0...4, using: &random)).map { _ in
                Bool.random(using: &random) ? dims.randomElement(using: &random)! : Int.random(in: 0...9, using: &random)
            }
            let offsetChoices = [0, 1, 4, 8, payload, payload + 1, Int.max, Int.min + 1, -1]
            let offsets = (0..<2).map { _ in Bool.random(using: &random) ? offsetChoices.randomElement(using: &random)! : Int.random(in: 0...payload, using: &random) }
            let dtype = dtypes.randomElement(using: &random)!
            let key = "t\(round)"
            let file = craftedSafeTensors(#"{"\#(key)":{"dtype":"\#(dtype)","shape":\#(shape),"data_offsets":\#(offsets)}}"#, payload: payload)
            do {
                let archive = try SafeTensors(data: file, source: "random-\(round).safetensors")
                let tensor = try archive.tensor(key)
                #expect(tensor.bytes.count == offsets[1] - offsets[0] && tensor.floats().count == tensor.elementCount, "round \(round): \(shape) \(offsets)")
                read += 1
            } catch let error as WeightError {
                let text = String(describing: error)
                #expect(text.contains("random-\(round).safetensors") && text.contains("\"\(key)\""), "round \(round): \(text)")
            }
        }
        print("randomExtremeHeadersNeverTrap: \(read) of 2000 headers were consistent and read")
        #expect(read > 0)
    }

    /// A key that is missing, misshapen or unexpected names the file it was looked for in, for
    /// safetensors and torch checkpoints alike.
    @Test func keyErrorsNameTheFile() throws {
        let w = try HostTensor([Float](repeating: 0, count: 6), shape: [2, 3]), b = try HostTensor([0, 0], shape: [2])
        let tensors = ["fc.weight": w, "fc.bias": b, "fc.extra": b]
        let fc = WeightPath()("fc")
        try withTemporaryFile(try SafeTensors.serialize(tensors), named: "keys.safetensors") { url in
            let archive = try SafeTensors(contentsOf: url)
            let missing = weightErrorText { _ = try StrictLoader(archive).take(fc("wieght")) }
            #expect(missing.contains("fc.wieght") && missing.contains(url.path) && missing.contains("fc.weight"), "\(missing)")
            let shape = weightErrorText { _ = try StrictLoader(archive).take(fc("weight"), shape: [3, 2]) }
            #expect(shape.contains("fc.weight") && shape.contains(url.path) && shape.contains("[3, 2]"), "\(shape)")
            let loader = StrictLoader(archive)
            _ = try loader.take(fc("weight"), shape: [2, 3])
            _ = try loader.take(fc("bias"), shape: [2])
            let unexpected = weightErrorText { _ = try loader.finish() }
            #expect(unexpected.contains("fc.extra") && unexpected.contains(url.path), "\(unexpected)")
            let direct = weightErrorText { _ = try archive.tensor("fc.gone") }
            #expect(direct.contains("fc.gone") && direct.contains(url.path), "\(direct)")
        }
        let checkpoint = FileManager.default.temporaryDirectory.appendingPathComponent("\(UUID().uuidString)-keys.pt")
        try TorchCheckpoint.write(tensors, to: checkpoint)
        defer { try? FileManager.default.removeItem(at: checkpoint) }
        let torch = try TorchCheckpoint(contentsOf: checkpoint)
        let missing = weightErrorText { _ = try StrictLoader(torch).take(fc("wieght")) }
        #expect(missing.contains("fc.wieght") && missing.contains(checkpoint.path), "\(missing)")
        let direct = weightErrorText { _ = try torch.tensor("fc.gone") }
        #expect(direct.contains("fc.gone") && direct.contains(checkpoint.path), "\(direct)")
    }

    /// A torch checkpoint's state dict, taken as an archive, keeps naming the file.
    @Test func stateDictArchiveNamesTheFile() throws {
        let checkpoint = FileManager.default.temporaryDirectory.appendingPathComponent("\(UUID().uuidString)-sd.pt")
        try TorchCheckpoint.write(["fc.weight": try HostTensor([1, 2], shape: [2])], under: "state_dict", to: checkpoint)
        defer { try? FileManager.default.removeItem(at: checkpoint) }
        let archive = try TorchCheckpoint(contentsOf: checkpoint).stateDictArchive(under: ["state_dict.", ""])
        #expect(archive.names == ["fc.weight"] && archive.file == checkpoint.path)
        let loader = StrictLoader(archive)
        let text = weightErrorText { _ = try loader.take(WeightPath()("fc")("bias")) }
        #expect(text.contains("fc.bias") && text.contains(checkpoint.path), "\(text)")
        // Tensors made in memory name no file, and their errors read as before.
        #expect(String(describing: WeightError.missing(key: "k", similar: [])) == "missing weight k")
    }
}
