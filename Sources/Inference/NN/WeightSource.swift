#if canImport(FoundationEssentials)
import FoundationEssentials  // Data, URL, JSON coding: keeps binaries that link Inference small (no ICU)
#else
import Foundation
#endif

/// Where layers get their weights. Layers ask for each tensor by path, shape and role; the source
/// answers from a checkpoint (strictly), with fresh random values (full-size architectures for
/// speed and memory runs, test checkpoints in the reference formats), or with shapes only (to count
/// a configuration's parameters without allocating them).
public struct WeightSource {
    /// What a tensor is for: decides its random initialisation and whether it counts as a parameter.
    public enum Role: Sendable, Equatable {
        case weight(fanIn: Int), bias(fanIn: Int), scale, shift, runningMean, runningVariance
        /// A fixed buffer (e.g. a positional-encoding table) the model computes itself when random.
        case buffer

        var isBuffer: Bool { self == .runningMean || self == .runningVariance || self == .buffer }
    }

    public enum Origin {
        case checkpoint(StrictLoader)
        case random(RandomWeights)
        case shapes(ShapeRecorder)
    }

    public let origin: Origin
    public let device: Device
    /// The element type the weights are stored in on the device (float32, or float16/bfloat16 to run a
    /// model entirely in half precision, as LatentSync runs its U-Net on CUDA).
    public let dtype: DType
    public let backend: TorchBackend
    /// Receives every tensor handed out, by key (training needs the model's parameters as a list).
    public let collector: ParameterCollector?

    public init(_ loader: StrictLoader, device: Device = .cpu, dtype: DType = .float32, backend: TorchBackend? = nil,
                collector: ParameterCollector? = nil) throws {
        try self.init(.checkpoint(loader), device: device, dtype: dtype, backend: backend, collector: collector)
    }

    public init(_ origin: Origin, device: Device = .cpu, dtype: DType = .float32, backend: TorchBackend? = nil,
                collector: ParameterCollector? = nil) throws {
        self.origin = origin; self.device = device; self.dtype = dtype; self.backend = try backend ?? TorchBackend.shared()
        self.collector = collector
    }

    private func placed(_ values: [Float], _ shape: [Int]) throws -> Tensor {
        let t = try Tensor(values, shape: shape, device: device, backend: backend)
        return dtype == .float32 ? t : try t.to(device, dtype)
    }

    /// Whether tensors are placeholders (a `ShapeRecorder` counting a configuration).
    public var isShapesOnly: Bool { if case .shapes = origin { true } else { false } }

    /// The weight at `path` with `shape`, as float32 on the device (F16/BF16 widen exactly).
    public func tensor(_ path: WeightPath, shape: [Int], role: Role) throws -> Tensor {
        let made: Tensor
        switch origin {
        case let .checkpoint(loader):
            let host = try loader.take(path, shape: shape, isBuffer: role.isBuffer)
            made = try placed(host.floats(), shape)
        case let .random(generator):
            made = try placed(generator.values(path, shape: shape, role: role), shape)
        case let .shapes(recorder):
            recorder.record(path, shape: shape, role: role)
            return try recorder.placeholder(backend)
        }
        collector?.add(path.key, made, isBuffer: role.isBuffer)
        return made
    }
}

/// The tensors a model was built with, in creation order (the state dict's order), keyed as in the
/// state dict: the parameter list an optimiser updates in place and a checkpoint saves.
public final class ParameterCollector: @unchecked Sendable {
    // @unchecked: filled while one thread builds a model, read-only afterwards.
    public private(set) var keys: [String] = []
    public private(set) var tensors: [Tensor] = []
    public private(set) var bufferKeys: Set<String> = []

    public init() {}

    func add(_ key: String, _ tensor: Tensor, isBuffer: Bool) {
        precondition(!keys.contains(key), "\(key) created twice")
        keys.append(key); tensors.append(tensor)
        if isBuffer { bufferKeys.insert(key) }
    }

    /// The trainable tensors (buffers such as running statistics excluded).
    public var parameters: [Tensor] { zip(keys, tensors).filter { !bufferKeys.contains($0.0) }.map(\.1) }

    /// Elements of the trainable tensors.
    public func parameterCount() throws -> Int {
        try zip(keys, tensors).filter { !bufferKeys.contains($0.0) }.reduce(0) { $0 + (try $1.1.shape.reduce(1, *)) }
    }

    /// Every tensor as float32 on the host, by key (a checkpoint's content).
    public func state() throws -> [String: HostTensor] {
        var out: [String: HostTensor] = [:]
        for (key, tensor) in zip(keys, tensors) { out[key] = try HostTensor(tensor.floats(), shape: tensor.shape) }
        return out
    }
}

/// Records the state dict a configuration declares (names, shapes, parameter count) without
/// allocating it. Models built from it hold placeholders and must not be run.
public final class ShapeRecorder {
    public private(set) var shapes: [(key: String, shape: [Int])] = []
    public private(set) var parameters = 0
    public private(set) var buffers = 0
    private var empty: Tensor?

    public init() {}

    func record(_ path: WeightPath, shape: [Int], role: WeightSource.Role) {
        shapes.append((path.key, shape))
        if role.isBuffer { buffers += shape.reduce(1, *) } else { parameters += shape.reduce(1, *) }
    }

    func placeholder(_ backend: TorchBackend) throws -> Tensor {
        if let empty { return empty }
        let made = try Tensor([], shape: [0], backend: backend)
        empty = made
        return made
    }
}

/// Fresh weights with PyTorch's default initialisation (uniform ±1/√fan_in for weights and biases,
/// norms at scale 1 and shift 0, running statistics 0 and 1), from a seeded generator so that the
/// same seed gives the same model. Keeps what it generated when asked, so a test can save it as a
/// checkpoint in a reference format.
public final class RandomWeights {
    private var generator: SeededGenerator
    private let keeping: Bool
    public private(set) var generated: [String: HostTensor] = [:]

    public init(seed: UInt64, keep: Bool = false) {
        generator = SeededGenerator(seed: seed); keeping = keep
    }

    /// Overrides for specific keys (e.g. a positional table), applied instead of random values.
    public var fixed: [String: [Float]] = [:]

    func values(_ path: WeightPath, shape: [Int], role: WeightSource.Role) throws -> [Float] {
        let count = shape.reduce(1, *)
        let values: [Float]
        if let given = fixed[path.key] {
            precondition(given.count == count, "fixed values for \(path.key): \(given.count), shape \(shape)")
            values = given
        } else {
            switch role {
            case let .weight(fanIn), let .bias(fanIn): values = uniform(count, bound: 1 / Float(max(1, fanIn)).squareRoot())
            case .scale, .runningVariance: values = Array(repeating: 1, count: count)
            case .shift, .runningMean, .buffer: values = Array(repeating: 0, count: count)
            }
        }
        if keeping { generated[path.key] = try HostTensor(values, shape: shape) }
        return values
    }

    private func uniform(_ n: Int, bound: Float) -> [Float] {
        (0..<n).map { _ in generator.symmetricUnit() * bound }
    }
}
