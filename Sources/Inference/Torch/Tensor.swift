import CTorchShim

/// A backend tensor. Owns its handle (released in `deinit`); every operation throws with the
/// backend's message, so one `try` covers an expression.
public final class Tensor: @unchecked Sendable {
    // @unchecked: the handle is immutable; libtorch tensors may be read from several threads.
    let handle: OpaquePointer
    public let backend: TorchBackend

    init(_ handle: OpaquePointer, _ backend: TorchBackend) { self.handle = handle; self.backend = backend }
    deinit { backend.api.release!(handle) }

    /// A float32 tensor holding `values` (row-major) on `device`.
    public convenience init(_ values: [Float], shape: [Int], device: Device = .cpu, backend: TorchBackend? = nil) throws {
        precondition(values.count == shape.reduce(1, *), "\(values.count) values for shape \(shape)")
        let backend = try backend ?? TorchBackend.shared()
        let dims = shape.map(Int64.init)
        var out: OpaquePointer?
        let (kind, index) = device.abi
        try backend.check(values.withUnsafeBytes { v in
            backend.api.from_host!(v.baseAddress, PD_FLOAT32, dims, Int32(dims.count), kind, index, &out)
        }, "tensor from host")
        self.init(out!, backend)
    }

    public var shape: [Int] {
        get throws {
            let n = Int(backend.api.ndim!(handle))
            var dims = [Int64](repeating: 0, count: max(1, n))
            try backend.check(backend.api.shape!(handle, &dims, Int32(dims.count)), "shape")
            return dims.prefix(n).map(Int.init)
        }
    }

    /// The values as float32 on the host.
    public func floats() throws -> [Float] {
        let count = try shape.reduce(1, *)
        var out = [Float](repeating: 0, count: count)
        try backend.check(out.withUnsafeMutableBytes { backend.api.to_host!(handle, PD_FLOAT32, $0.baseAddress, Int64($0.count)) }, "tensor to host")
        return out
    }

    public func to(_ device: Device, _ dtype: DType = .float32) throws -> Tensor {
        let (kind, index) = device.abi
        return try make("to(\(device))") { backend.api.to!(handle, kind, index, dtype.abi, &$0) }
    }

    func make(_ op: String, _ body: (inout OpaquePointer?) -> Int32) throws -> Tensor {
        var out: OpaquePointer?
        try backend.check(body(&out), op)
        return Tensor(out!, backend)
    }

    public static func + (a: Tensor, b: Tensor) throws -> Tensor { try a.make("add") { a.backend.api.add!(a.handle, b.handle, &$0) } }
    public static func * (a: Tensor, b: Tensor) throws -> Tensor { try a.make("mul") { a.backend.api.mul!(a.handle, b.handle, &$0) } }
    public func matmul(_ b: Tensor) throws -> Tensor { try make("matmul") { backend.api.matmul!(handle, b.handle, &$0) } }
    public func relu() throws -> Tensor { try make("relu") { backend.api.relu!(handle, &$0) } }
    public func reshaped(_ shape: [Int]) throws -> Tensor {
        let dims = shape.map(Int64.init)
        return try make("reshape") { backend.api.reshape!(handle, dims, Int32(dims.count), &$0) }
    }
}

/// The functional forms the layers of NN/ are built on (PyTorch's torch.nn.functional semantics).
public enum Functional {
    public static func linear(_ x: Tensor, weight: Tensor, bias: Tensor?) throws -> Tensor {
        try x.make("linear") { x.backend.api.linear!(x.handle, weight.handle, bias?.handle, &$0) }
    }

    /// Convolution of rank `stride.count` (1, 2 or 3).
    public static func convolution(_ x: Tensor, weight: Tensor, bias: Tensor?, stride: [Int], padding: [Int], dilation: [Int]? = nil,
                                   groups: Int = 1) throws -> Tensor {
        let n = stride.count
        precondition(padding.count == n && (dilation?.count ?? n) == n, "stride, padding and dilation need one entry per spatial dimension")
        let s = stride.map(Int64.init), p = padding.map(Int64.init), d = (dilation ?? Array(repeating: 1, count: n)).map(Int64.init)
        return try x.make("convolution") { x.backend.api.convolution!(x.handle, weight.handle, bias?.handle, s, p, d, Int32(n), Int64(groups), &$0) }
    }

    /// Batch normalisation with running statistics (evaluation mode).
    public static func batchNorm(_ x: Tensor, mean: Tensor, variance: Tensor, weight: Tensor?, bias: Tensor?, eps: Double = 1e-5) throws -> Tensor {
        try x.make("batch_norm") { x.backend.api.batch_norm!(x.handle, weight?.handle, bias?.handle, mean.handle, variance.handle, eps, &$0) }
    }

    public static func maxPool(_ x: Tensor, kernel: [Int], stride: [Int], padding: [Int]) throws -> Tensor {
        let n = kernel.count
        precondition(stride.count == n && padding.count == n, "kernel, stride and padding need one entry per spatial dimension")
        let k = kernel.map(Int64.init), s = stride.map(Int64.init), p = padding.map(Int64.init)
        return try x.make("max_pool") { x.backend.api.max_pool!(x.handle, k, s, p, Int32(n), &$0) }
    }
}
