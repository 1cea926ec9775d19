import Foundation

/// A file of named tensors (safetensors, a torch checkpoint's state dict).
public protocol TensorArchive {
    /// Stored names, sorted.
    var names: [String] { get }
    /// The stored shape of `name`, nil when absent.
    func shape(of name: String) -> [Int]?
    func tensor(_ name: String) throws -> HostTensor
}

/// Hands a model its weights by key and checks, both ways, that the file and the model agree: a
/// missing key or a shape that differs fails at once with the key's name, and `finish()` fails on
/// any stored key the model never asked for, except the leftovers the model declares (e.g. BatchNorm's
/// `num_batches_tracked`, unused in evaluation).
public final class StrictLoader {
    public struct Report: Sendable, Equatable {
        public var tensors: Int
        /// Elements of the loaded weights and biases (buffers such as running statistics excluded).
        public var parameters: Int
        public var buffers: Int
        public var ignored: [String]
    }

    public let archive: any TensorArchive
    private var used: Set<String> = []
    private var parameterCount = 0
    private var bufferCount = 0

    public init(_ archive: any TensorArchive) { self.archive = archive }

    /// The tensor at `path`, which must have `shape` (nil: any shape).
    public func take(_ path: WeightPath, shape: [Int]? = nil, isBuffer: Bool = false) throws -> HostTensor {
        let key = path.key
        guard let stored = archive.shape(of: key) else { throw WeightError.missing(key: key, similar: WeightError.similar(to: key, in: archive.names)) }
        if let shape, shape != stored { throw WeightError.shapeMismatch(key: key, expected: shape, found: stored) }
        used.insert(key)
        let count = stored.reduce(1, *)
        if isBuffer { bufferCount += count } else { parameterCount += count }
        return try archive.tensor(key)
    }

    /// Whether the file has `path` (for optional parameters such as a bias).
    public func has(_ path: WeightPath) -> Bool { archive.shape(of: path.key) != nil }

    /// Ends loading: every stored key must have been taken or match one of `ignoring` (a key
    /// suffix such as `.num_batches_tracked`).
    public func finish(ignoring suffixes: [String] = []) throws -> Report {
        let left = archive.names.filter { !used.contains($0) }
        let ignored = left.filter { key in suffixes.contains { key.hasSuffix($0) } }
        let unexpected = left.filter { !ignored.contains($0) }
        guard unexpected.isEmpty else { throw WeightError.unexpected(keys: unexpected) }
        return Report(tensors: used.count, parameters: parameterCount, buffers: bufferCount, ignored: ignored)
    }
}
