#if canImport(FoundationEssentials)
import FoundationEssentials  // Data, URL, JSON coding: keeps binaries that link Inference small (no ICU)
#else
import Foundation
#endif

/// Element types of stored tensors (safetensors' names).
public enum StoredDType: String, Sendable, CaseIterable {
    case f64 = "F64", f32 = "F32", f16 = "F16", bf16 = "BF16", i64 = "I64", i32 = "I32", i16 = "I16", i8 = "I8", u8 = "U8", bool = "BOOL"

    public var byteSize: Int {
        switch self {
        case .f64, .i64: 8
        case .f32, .i32: 4
        case .f16, .bf16, .i16: 2
        case .i8, .u8, .bool: 1
        }
    }

    public var isFloatingPoint: Bool { [.f64, .f32, .f16, .bf16].contains(self) }
}

/// A tensor in host memory: element type, shape (row-major) and little-endian bytes.
public struct HostTensor: Sendable, Equatable {
    public var dtype: StoredDType
    public var shape: [Int]
    public var bytes: Data

    public init(dtype: StoredDType, shape: [Int], bytes: Data) throws {
        guard let expected = Self.byteCount(dtype, shape) else {
            throw WeightError.malformed("\(dtype.rawValue) \(shape) is not a possible tensor size (a negative dimension, or more bytes than memory has)")
        }
        guard bytes.count == expected else { throw WeightError.malformed("\(dtype.rawValue) \(shape) needs \(expected) bytes, got \(bytes.count)") }
        self.dtype = dtype; self.shape = shape; self.bytes = bytes
    }

    /// The bytes a `dtype` tensor of `shape` occupies; nil when a dimension is negative or the
    /// size overflows `Int` (shapes come from files, so the arithmetic must not trap). Multiplied left
    /// to right as `elementCount` is, so no shape accepted here can overflow there.
    static func byteCount(_ dtype: StoredDType, _ shape: [Int]) -> Int? {
        var bytes = dtype.byteSize
        for n in shape {
            guard n >= 0 else { return nil }
            let (product, overflow) = bytes.multipliedReportingOverflow(by: n)
            guard !overflow else { return nil }
            bytes = product
        }
        return bytes
    }

    public init(_ values: [Float], shape: [Int]) throws {
        try self.init(dtype: .f32, shape: shape, bytes: values.withUnsafeBufferPointer { Data(buffer: $0) })
    }

    public var elementCount: Int { shape.reduce(1, *) }

    /// The values as Float: F16 and BF16 widen exactly, F64 rounds to nearest; integers convert.
    public func floats() -> [Float] {
        bytes.withUnsafeBytes { raw -> [Float] in
            let n = elementCount
            func load<T>(_: T.Type, _ i: Int) -> T { raw.loadUnaligned(fromByteOffset: i * MemoryLayout<T>.size, as: T.self) }
            switch dtype {
            case .f32: return (0..<n).map { Float(bitPattern: UInt32(littleEndian: load(UInt32.self, $0))) }
            case .f64: return (0..<n).map { Float(Double(bitPattern: UInt64(littleEndian: load(UInt64.self, $0)))) }
            case .f16: return (0..<n).map { Self.halfToFloat(UInt16(littleEndian: load(UInt16.self, $0))) }
            case .bf16: return (0..<n).map { Float(bitPattern: UInt32(UInt16(littleEndian: load(UInt16.self, $0))) << 16) }
            case .i64: return (0..<n).map { Float(Int64(littleEndian: load(Int64.self, $0))) }
            case .i32: return (0..<n).map { Float(Int32(littleEndian: load(Int32.self, $0))) }
            case .i16: return (0..<n).map { Float(Int16(littleEndian: load(Int16.self, $0))) }
            case .i8: return (0..<n).map { Float(load(Int8.self, $0)) }
            case .u8, .bool: return (0..<n).map { Float(load(UInt8.self, $0)) }
            }
        }
    }

    public func doubles() -> [Double] {
        guard dtype == .f64 else { return floats().map(Double.init) }
        return bytes.withUnsafeBytes { raw in (0..<elementCount).map { Double(bitPattern: UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: $0 * 8, as: UInt64.self))) } }
    }

    public func int64s() -> [Int64] {
        bytes.withUnsafeBytes { raw -> [Int64] in
            switch dtype {
            case .i64: return (0..<elementCount).map { Int64(littleEndian: raw.loadUnaligned(fromByteOffset: $0 * 8, as: Int64.self)) }
            case .i32: return (0..<elementCount).map { Int64(Int32(littleEndian: raw.loadUnaligned(fromByteOffset: $0 * 4, as: Int32.self))) }
            case .i16: return (0..<elementCount).map { Int64(Int16(littleEndian: raw.loadUnaligned(fromByteOffset: $0 * 2, as: Int16.self))) }
            default: return floats().map { Int64($0) }
            }
        }
    }

    /// IEEE binary16 → binary32, exact for every value (subnormals, infinities and NaN included).
    static func halfToFloat(_ h: UInt16) -> Float {
        let sign = UInt32(h >> 15) << 31, exponent = Int(h >> 10) & 0x1F, mantissa = UInt32(h & 0x3FF)
        switch exponent {
        case 0:
            let magnitude = Float(mantissa) * 0x1p-24
            return sign == 0 ? magnitude : -magnitude
        case 31: return Float(bitPattern: sign | 0x7F80_0000 | (mantissa << 13))
        default: return Float(bitPattern: sign | UInt32(exponent - 15 + 127) << 23 | (mantissa << 13))
        }
    }
}

/// A safetensors file (8-byte little-endian header length, JSON header of
/// `{name: {dtype, shape, data_offsets}}` plus optional `__metadata__`, then the data), read
/// through a memory map so that large checkpoints are not copied before they are used.
public struct SafeTensors: Sendable, TensorArchive {
    public struct Entry: Sendable, Equatable {
        public var dtype: StoredDType
        public var shape: [Int]
        public var range: Range<Int>
    }

    public let entries: [String: Entry]
    public let metadata: [String: String]
    /// The file read (or the `source` given with the data), named in errors about keys.
    public let file: String?
    private let data: Data
    private let base: Int

    public init(contentsOf url: URL) throws {
        let data: Data
        do { data = try Data(contentsOf: url, options: .alwaysMapped) } catch {
            throw WeightError.unreadable(path: url.path, reason: "\(error)")
        }
        try self.init(data: data, source: url.path)
    }

    /// `source` names the data in messages (a path, when the bytes came from a file).
    public init(data: Data, source: String? = nil) throws {
        let name = source ?? "safetensors data"
        // Every number below comes from the file: all arithmetic on them is checked, and each
        // inconsistency is an error naming the file and the tensor rather than a trap.
        let damaged = "the file is damaged or not a safetensors file"
        guard data.count >= 8 else {
            throw WeightError.malformed("\(name): \(data.count) bytes, shorter than the 8-byte header length; the file is truncated or not a safetensors file")
        }
        let headerLength = data.prefix(8).enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << (8 * $1.offset) }
        guard headerLength <= UInt64(data.count - 8) else {
            throw WeightError.malformed("\(name): the header length \(headerLength) runs past the end of the file (\(data.count) bytes); the file is truncated or not a safetensors file")
        }
        let start = data.startIndex + 8
        let header: [String: HeaderValue]
        do { header = try JSONDecoder().decode([String: HeaderValue].self, from: data.subdata(in: start..<(start + Int(headerLength)))) } catch {
            throw WeightError.malformed("\(name): the header is not a JSON object of {dtype, shape, data_offsets} entries (\(error)); \(damaged)")
        }
        base = 8 + Int(headerLength)
        let payload = data.count - base
        var entries: [String: Entry] = [:]
        var metadata: [String: String] = [:]
        for (key, value) in header {
            switch value {
            case let .metadata(values):
                guard key == "__metadata__" else { throw WeightError.malformed("\(name): tensor \"\(key)\" lacks dtype, shape or data_offsets; \(damaged)") }
                metadata = values
            case let .tensor(typeName, shape, offsets):
                guard key != "__metadata__" else { throw WeightError.malformed("\(name): __metadata__ must map strings to strings; \(damaged)") }
                func failure(_ problem: String) -> WeightError { .malformed("\(name): tensor \"\(key)\" \(problem); \(damaged)") }
                guard let dtype = StoredDType(rawValue: typeName) else {
                    throw WeightError.malformed("\(name): tensor \"\(key)\" has dtype \(typeName), which this reader does not support (\(StoredDType.allCases.map(\.rawValue).joined(separator: ", ")) are)")
                }
                guard !shape.contains(where: { $0 < 0 }) else { throw failure("has a negative dimension in its shape \(shape)") }
                guard let size = HostTensor.byteCount(dtype, shape) else {
                    throw failure("has shape \(shape), whose size in \(typeName) overflows a 64-bit byte count")
                }
                guard offsets.count == 2 else { throw failure("has data_offsets \(offsets), not a [begin, end] pair") }
                let (begin, end) = (offsets[0], offsets[1])
                guard begin >= 0, begin <= end else { throw failure("has data_offsets \(offsets), not an increasing pair of byte positions") }
                guard end <= payload else {
                    throw failure("has data_offsets \(offsets) that run past the end of the file, whose data section has \(payload) bytes (a truncated download?)")
                }
                guard end - begin == size else {
                    throw failure("of shape \(shape) and dtype \(typeName) needs \(size) bytes, but its data_offsets \(offsets) span \(end - begin)")
                }
                entries[key] = Entry(dtype: dtype, shape: shape, range: begin..<end)
            }
        }
        self.entries = entries
        self.metadata = metadata
        self.file = source
        self.data = data
    }

    /// One value of the JSON header: a tensor entry, or the `__metadata__` string map.
    enum HeaderValue: Codable {
        case tensor(dtype: String, shape: [Int], offsets: [Int])
        case metadata([String: String])

        private enum Keys: String, CodingKey { case dtype, shape, data_offsets }

        init(from decoder: any Decoder) throws {
            if let strings = try? decoder.singleValueContainer().decode([String: String].self) {
                self = .metadata(strings)
                return
            }
            let c = try decoder.container(keyedBy: Keys.self)
            self = .tensor(dtype: try c.decode(String.self, forKey: .dtype), shape: try c.decode([Int].self, forKey: .shape),
                           offsets: try c.decode([Int].self, forKey: .data_offsets))
        }

        func encode(to encoder: any Encoder) throws {
            switch self {
            case let .metadata(values):
                var c = encoder.singleValueContainer()
                try c.encode(values)
            case let .tensor(dtype, shape, offsets):
                var c = encoder.container(keyedBy: Keys.self)
                try c.encode(dtype, forKey: .dtype); try c.encode(shape, forKey: .shape); try c.encode(offsets, forKey: .data_offsets)
            }
        }
    }

    public var names: [String] { entries.keys.sorted() }
    public func shape(of name: String) -> [Int]? { entries[name]?.shape }

    public func tensor(_ name: String) throws -> HostTensor {
        guard let e = entries[name] else { throw WeightError.missing(key: name, similar: WeightError.similar(to: name, in: names), file: file) }
        let lo = data.startIndex + base + e.range.lowerBound
        return try HostTensor(dtype: e.dtype, shape: e.shape, bytes: data.subdata(in: lo..<(lo + e.range.count)))
    }

    public func float32(_ name: String) throws -> [Float] { try tensor(name).floats() }
    public func float64(_ name: String) throws -> [Double] { try tensor(name).doubles() }
    public func uint8(_ name: String) throws -> [UInt8] { [UInt8](try tensor(name).bytes) }
    public func int16(_ name: String) throws -> [Int16] { try tensor(name).int64s().map { Int16($0) } }

    /// Serialises `tensors` (names sorted, data in that order, 8-byte aligned as PyTorch's writer does).
    public static func serialize(_ tensors: [String: HostTensor], metadata: [String: String] = [:]) throws -> Data {
        var header: [String: HeaderValue] = [:]
        if !metadata.isEmpty { header["__metadata__"] = .metadata(metadata) }
        var offset = 0
        let names = tensors.keys.sorted()
        for name in names {
            let t = tensors[name]!
            header[name] = .tensor(dtype: t.dtype.rawValue, shape: t.shape, offsets: [offset, offset + t.bytes.count])
            offset += t.bytes.count
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        var json = try encoder.encode(header)
        while (8 + json.count) % 8 != 0 { json.append(0x20) }
        var out = Data()
        withUnsafeBytes(of: UInt64(json.count).littleEndian) { out.append(contentsOf: $0) }
        out.append(json)
        for name in names { out.append(tensors[name]!.bytes) }
        return out
    }

    /// Writes `tensors` to `url` through a temporary and a rename (a reader never sees half a file).
    public static func write(_ tensors: [String: HostTensor], metadata: [String: String] = [:], to url: URL) throws {
        try serialize(tensors, metadata: metadata).write(to: url, options: .atomic)
    }
}
