import CTorchShim
import Synchronization
#if canImport(FoundationEssentials)
import FoundationEssentials  // Data, URL, JSON coding: keeps binaries that link Inference small (no ICU)
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#endif

/// Errors of the torch backend and its loading; each says what to do about it.
public enum TorchError: Error, CustomStringConvertible, Equatable {
    case backendNotFound(searched: [String])
    case backendUnusable(path: String, reason: String)
    case operation(String, String)
    case device(String)

    public var description: String {
        switch self {
        case let .backendNotFound(searched):
            "no torch backend found (looked for \(searched.joined(separator: ", "))); build it with scripts/build-torch-backend.sh or set PIPELINED_TORCH_BACKEND"
        case let .backendUnusable(path, reason): "torch backend \(path) cannot be used: \(reason)"
        case let .operation(op, message): "\(op): \(message)"
        case let .device(message): message
        }
    }
}

/// The loaded backend: its path and function table. Loaded once per process (dlopen, never dlclose).
public final class TorchBackend: @unchecked Sendable {
    // @unchecked: immutable after loading; the table's functions are thread-safe.
    public static let libraryName = "libpipelined_torch.so"
    public let path: String
    let api: pd_torch_api

    private init(path: String, api: pd_torch_api) { self.path = path; self.api = api }

    private static let loaded = Mutex<TorchBackend?>(nil)

    /// The backend of this process: `PIPELINED_TORCH_BACKEND`, else beside the executable, else the
    /// build tree's `.build/torch-backend/` (where scripts/build-torch-backend.sh puts it).
    public static func shared() throws -> TorchBackend {
        try loaded.withLock { loaded in
            if let loaded { return loaded }
            let candidates = searchPaths()
            guard let path = candidates.first(where: { FileManager.default.fileExists(atPath: $0) }) else {
                throw TorchError.backendNotFound(searched: candidates)
            }
            let backend = try load(path)
            loaded = backend
            return backend
        }
    }

    static func searchPaths() -> [String] {
        var paths: [String] = []
        if let explicit = ProcessInfo.processInfo.environment["PIPELINED_TORCH_BACKEND"], !explicit.isEmpty { paths.append(explicit) }
        // The running binary itself (argv[0] may be a bare name found through PATH).
        let running = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        let executable = URL(fileURLWithPath: running).resolvingSymlinksInPath()
        paths.append(executable.deletingLastPathComponent().appendingPathComponent(libraryName).path)
        if let range = executable.path.firstRange(of: "/.build/") {
            paths.append(String(executable.path[..<range.upperBound]) + "torch-backend/" + libraryName)
        }
        return paths
    }

    /// Opens the library at `path` and checks its ABI.
    public static func load(_ path: String) throws -> TorchBackend {
        guard let handle = dlopen(path, RTLD_NOW | RTLD_LOCAL) else {
            throw TorchError.backendUnusable(path: path, reason: String(cString: dlerror()))
        }
        guard let symbol = dlsym(handle, "pd_torch_api_v1") else {
            throw TorchError.backendUnusable(path: path, reason: "no pd_torch_api_v1 entry point (not a pipelined torch backend)")
        }
        let entry = unsafeBitCast(symbol, to: pd_torch_api_v1_fn.self)
        guard let table = entry() else { throw TorchError.backendUnusable(path: path, reason: "it refused ABI version 1") }
        guard table.pointee.abi_version == PD_TORCH_ABI_VERSION, Int(table.pointee.size) >= MemoryLayout<pd_torch_api>.size else {
            throw TorchError.backendUnusable(path: path, reason: "ABI \(table.pointee.abi_version) with a \(table.pointee.size)-byte table; "
                                             + "this build expects ABI \(PD_TORCH_ABI_VERSION) and \(MemoryLayout<pd_torch_api>.size) bytes: rebuild the backend")
        }
        // A table with a missing entry would crash at its first call: refuse it now instead.
        let complete = withUnsafeBytes(of: table.pointee) { raw in
            stride(from: 8, to: MemoryLayout<pd_torch_api>.size, by: MemoryLayout<UInt>.stride).allSatisfy { raw.load(fromByteOffset: $0, as: UInt.self) != 0 }
        }
        guard complete else { throw TorchError.backendUnusable(path: path, reason: "its function table has empty entries") }
        return TorchBackend(path: path, api: table.pointee)
    }

    /// libtorch's version, e.g. "1.13.1".
    public var torchVersion: String { api.torch_version!().map { String(cString: $0) } ?? "unknown" }
    public var cudaDeviceCount: Int { Int(api.cuda_device_count!()) }

    /// The device `--device auto|cpu|cuda:N` names here; CUDA on a CPU-only backend is an error.
    public func device(_ name: String) throws -> Device {
        switch name {
        case "auto": return cudaDeviceCount > 0 ? .cuda(0) : .cpu
        case "cpu": return .cpu
        default:
            guard name.hasPrefix("cuda"), let index = name == "cuda" ? 0 : Int(name.dropFirst(5)), name == "cuda" || name.dropFirst(4).first == ":" else {
                throw TorchError.device("unknown device \"\(name)\"; use auto, cpu or cuda:N")
            }
            guard index < cudaDeviceCount else {
                throw TorchError.device(cudaDeviceCount == 0
                    ? "device \(name) requested, but the torch backend at \(path) (libtorch \(torchVersion)) has no CUDA device; use --device cpu or a CUDA build of the backend"
                    : "device \(name) requested, but only \(cudaDeviceCount) CUDA device(s) are visible")
            }
            return .cuda(index)
        }
    }

    func check(_ status: Int32, _ op: String) throws {
        guard status == 0 else { throw TorchError.operation(op, api.last_error!().map { String(cString: $0) } ?? "unknown error") }
    }
}

/// Where a tensor lives.
public enum Device: Sendable, Equatable, CustomStringConvertible {
    case cpu
    case cuda(Int)

    var abi: (pd_device_kind, Int32) {
        switch self {
        case .cpu: (PD_CPU, 0)
        case let .cuda(i): (PD_CUDA, Int32(i))
        }
    }

    public var description: String {
        switch self {
        case .cpu: "cpu"
        case let .cuda(i): "cuda:\(i)"
        }
    }
}

/// Element types of backend tensors (those the models use).
public enum DType: Sendable, Equatable, CaseIterable {
    case float32, float16, bfloat16, float64, int64, uint8

    var abi: pd_dtype {
        switch self {
        case .float32: PD_FLOAT32
        case .float16: PD_FLOAT16
        case .bfloat16: PD_BFLOAT16
        case .float64: PD_FLOAT64
        case .int64: PD_INT64
        case .uint8: PD_UINT8
        }
    }

    init?(abi: Int32) {
        guard let match = Self.allCases.first(where: { Int32($0.abi.rawValue) == abi }) else { return nil }
        self = match
    }

    public var byteSize: Int {
        switch self {
        case .float32: 4
        case .float16, .bfloat16: 2
        case .float64, .int64: 8
        case .uint8: 1
        }
    }
}

/// Element-wise activations (PyTorch's definitions; `gelu` is the exact erf form).
public enum Activation: Sendable {
    case relu, silu, gelu, geluTanh, sigmoid, tanh

    var abi: pd_activation {
        switch self {
        case .relu: PD_ACT_RELU
        case .silu: PD_ACT_SILU
        case .gelu: PD_ACT_GELU
        case .geluTanh: PD_ACT_GELU_TANH
        case .sigmoid: PD_ACT_SIGMOID
        case .tanh: PD_ACT_TANH
        }
    }
}
