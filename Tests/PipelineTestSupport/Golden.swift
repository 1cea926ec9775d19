import Foundation

/// The reference tensors in `../shared/golden` (see its README). Tests that use them fail, rather
/// than skip, when the folder is missing: CI always has it beside the clone.
public enum Golden {
    public static var directory: URL {
        get throws {
            let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            for candidate in [root.appendingPathComponent("../shared/golden"), root.appendingPathComponent("shared/golden")] {
                if FileManager.default.fileExists(atPath: candidate.appendingPathComponent("README.md").path) { return candidate.standardized }
            }
            throw Fixtures.Failure(description: "golden reference data not found at \(root.path)/../shared/golden")
        }
    }
}

/// A read-only safetensors file (8-byte header length, JSON header, little-endian data).
public struct SafeTensorsFile: Sendable {
    public struct Entry: Sendable { public var dtype: String; public var shape: [Int]; public var range: Range<Int> }
    public let entries: [String: Entry]
    private let data: Data
    private let base: Int

    public init(contentsOf url: URL) throws {
        data = try Data(contentsOf: url)
        let n = Int(data.prefix(8).enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << (8 * $1.offset) })
        let header = try JSONSerialization.jsonObject(with: data.subdata(in: 8..<(8 + n))) as! [String: Any]
        base = 8 + n
        var entries: [String: Entry] = [:]
        for (name, value) in header where name != "__metadata__" {
            let d = value as! [String: Any]
            let offsets = d["data_offsets"] as! [Int]
            entries[name] = Entry(dtype: d["dtype"] as! String, shape: d["shape"] as! [Int], range: offsets[0]..<offsets[1])
        }
        self.entries = entries
    }

    public func bytes(_ name: String) throws -> Data {
        guard let e = entries[name] else { throw Fixtures.Failure(description: "no tensor \(name)") }
        return data.subdata(in: (base + e.range.lowerBound)..<(base + e.range.upperBound))
    }

    public func float64(_ name: String) throws -> [Double] {
        let b = try bytes(name)
        return b.withUnsafeBytes { raw in (0..<(b.count / 8)).map { Double(bitPattern: UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: $0 * 8, as: UInt64.self))) } }
    }

    public func uint8(_ name: String) throws -> [UInt8] { [UInt8](try bytes(name)) }

    public func int16(_ name: String) throws -> [Int16] {
        let b = try bytes(name)
        return b.withUnsafeBytes { raw in (0..<(b.count / 2)).map { Int16(bitPattern: UInt16(littleEndian: raw.loadUnaligned(fromByteOffset: $0 * 2, as: UInt16.self))) } }
    }

    public func float32(_ name: String) throws -> [Float] {
        let b = try bytes(name)
        return b.withUnsafeBytes { raw in (0..<(b.count / 4)).map { Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: $0 * 4, as: UInt32.self))) } }
    }
}
