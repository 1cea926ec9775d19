#if canImport(FoundationEssentials)
import FoundationEssentials  // Data, URL, JSON coding: keeps binaries that link Inference small (no ICU)
#else
import Foundation
#endif

/// Why weights could not be loaded; every case names the file or the key a person has to look at.
/// The key cases carry the file they came from when the weights were read from one (`file` is nil
/// for tensors built in memory), so that a message about a key also says which file to look at.
public enum WeightError: Error, CustomStringConvertible, Equatable {
    case unreadable(path: String, reason: String)
    case malformed(String)
    case missing(key: String, similar: [String], file: String? = nil)
    case shapeMismatch(key: String, expected: [Int], found: [Int], file: String? = nil)
    case unexpected(keys: [String], file: String? = nil)

    public var description: String {
        switch self {
        case let .unreadable(path, reason): "cannot read weights \(path): \(reason)"
        case let .malformed(detail): "malformed weights: \(detail)"
        case let .missing(key, similar, file):
            "missing weight \(key)\(Self.in(file))" + (similar.isEmpty ? "" : " (the file has \(similar.joined(separator: ", ")))")
                + (file == nil ? "" : "; is it the weights file of this model?")
        case let .shapeMismatch(key, expected, found, file):
            "weight \(key)\(Self.in(file)) has shape \(found), the model expects \(expected)"
                + (file == nil ? "" : "; is it the weights file of this model and configuration?")
        case let .unexpected(keys, file):
            "\(keys.count) weight(s) in \(file ?? "the file") are not used by the model: \(keys.prefix(8).joined(separator: ", "))\(keys.count > 8 ? ", …" : "")"
        }
    }

    private static func `in`(_ file: String?) -> String { file.map { " in \($0)" } ?? "" }

    /// Up to three stored names sharing the longest prefix of dot-separated parts with `key`.
    static func similar(to key: String, in names: [String]) -> [String] {
        let parts = key.split(separator: ".")
        func shared(_ name: String) -> Int { zip(parts, name.split(separator: ".")).prefix { $0 == $1 }.count }
        let best = names.map(shared).max() ?? 0
        guard best > 0 else { return [] }
        return Array(names.filter { shared($0) == best }.prefix(3))
    }
}
