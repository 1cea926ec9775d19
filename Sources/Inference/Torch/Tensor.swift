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

    /// A tensor of `dtype` from raw little-endian host bytes (row-major), e.g. uint8 frames.
    public convenience init(bytes: UnsafeRawBufferPointer, dtype: DType, shape: [Int], device: Device = .cpu, backend: TorchBackend? = nil) throws {
        precondition(bytes.count == shape.reduce(1, *) * dtype.byteSize, "\(bytes.count) bytes for \(dtype) \(shape)")
        let backend = try backend ?? TorchBackend.shared()
        let dims = shape.map(Int64.init)
        var out: OpaquePointer?
        let (kind, index) = device.abi
        try backend.check(backend.api.from_host!(bytes.baseAddress ?? UnsafeRawPointer(bitPattern: 1), dtype.abi, dims, Int32(dims.count), kind, index, &out),
                          "tensor from host")
        self.init(out!, backend)
    }

    public var device: Device {
        var kind: Int32 = 0, index: Int32 = 0
        _ = backend.api.device_of!(handle, &kind, &index)
        return kind == Int32(PD_CUDA.rawValue) ? .cuda(Int(index)) : .cpu
    }

    public var dtype: DType? { DType(abi: backend.api.dtype!(handle)) }

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

    /// The values as bytes on the host (a uint8 tensor's own values; others are converted like `.to(torch.uint8)`).
    public func uint8s() throws -> [UInt8] {
        let count = try shape.reduce(1, *)
        var out = [UInt8](repeating: 0, count: count)
        try out.withUnsafeMutableBytes { raw in
            try backend.check(backend.api.to_host!(handle, PD_UINT8, raw.baseAddress, Int64(raw.count)), "to host")
        }
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
    public static func - (a: Tensor, b: Tensor) throws -> Tensor { try a.make("sub") { a.backend.api.sub!(a.handle, b.handle, &$0) } }
    public static func / (a: Tensor, b: Tensor) throws -> Tensor { try a.make("div") { a.backend.api.div!(a.handle, b.handle, &$0) } }
    /// `self · scale + shift`.
    public func affine(scale: Double, shift: Double = 0) throws -> Tensor { try make("affine") { backend.api.affine!(handle, scale, shift, &$0) } }
    public func activation(_ kind: Activation) throws -> Tensor {
        try make("\(kind)") { backend.api.activation!(handle, Int32(kind.abi.rawValue), &$0) }
    }
    public func permuted(_ order: [Int]) throws -> Tensor {
        let dims = order.map(Int64.init)
        return try make("permute") { backend.api.permute!(handle, dims, Int32(dims.count), &$0) }
    }
    /// Elements `range` of dimension `dim` (a view).
    public func narrowed(_ dim: Int, _ range: Range<Int>) throws -> Tensor {
        try make("narrow") { backend.api.narrow!(handle, Int64(dim), Int64(range.lowerBound), Int64(range.count), &$0) }
    }
    public func clamped(_ low: Double, _ high: Double) throws -> Tensor { try make("clamp") { backend.api.clamp!(handle, low, high, &$0) } }
    public func softmax(_ dim: Int) throws -> Tensor { try make("softmax") { backend.api.softmax!(handle, Int64(dim), &$0) } }
    public func sum(_ dims: [Int], keepingDims: Bool = false) throws -> Tensor { try reduce(PD_REDUCE_SUM, dims, keepingDims) }
    public func mean(_ dims: [Int], keepingDims: Bool = false) throws -> Tensor { try reduce(PD_REDUCE_MEAN, dims, keepingDims) }
    private func reduce(_ kind: pd_reduction, _ dims: [Int], _ keep: Bool) throws -> Tensor {
        let d = dims.map(Int64.init)
        return try make("reduce") { backend.api.reduce!(handle, Int32(kind.rawValue), d, Int32(d.count), keep ? 1 : 0, &$0) }
    }

    /// Concatenation along `dim`.
    public static func cat(_ parts: [Tensor], dim: Int) throws -> Tensor {
        precondition(!parts.isEmpty, "cat of no tensors")
        let handles: [OpaquePointer?] = parts.map(\.handle)
        return try parts[0].make("cat") { out in handles.withUnsafeBufferPointer { parts[0].backend.api.cat!($0.baseAddress, Int32($0.count), Int64(dim), &out) } }
    }
    public static func * (a: Tensor, b: Tensor) throws -> Tensor { try a.make("mul") { a.backend.api.mul!(a.handle, b.handle, &$0) } }
    public func matmul(_ b: Tensor) throws -> Tensor { try make("matmul") { backend.api.matmul!(handle, b.handle, &$0) } }
    public func relu() throws -> Tensor { try make("relu") { backend.api.relu!(handle, &$0) } }
    /// The same values laid out contiguously (NCHW) or channels-last (NHWC, 4-D only); a no-op when they already are.
    public func contiguous(channelsLast: Bool) throws -> Tensor {
        try make("contiguous") { backend.api.contiguous_as!(handle, channelsLast ? 1 : 0, &$0) }
    }
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

    /// GEGLU: `x·Wᵀ + b` split in halves [a | g] along the last dimension (`weight` is [2·inner, C]) →
    /// `a · GELU(g)` (exact GELU). On CUDA without autograd one product and one fused kernel.
    public static func gegluLinear(_ x: Tensor, weight: Tensor, bias: Tensor?) throws -> Tensor {
        try x.make("geglu_linear") { x.backend.api.geglu_linear!(x.handle, weight.handle, bias?.handle, &$0) }
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

    /// GroupNorm of (B·F, C, H, W) frames with statistics pooled over each item's `frames` frames (the reference's
    /// GroupNorm of (B, C, F, H, W)), optionally followed by SiLU; the result keeps `x`'s memory layout.
    public static func groupNorm(frames x: Tensor, frames: Int, groups: Int, weight: Tensor?, bias: Tensor?, eps: Double, silu: Bool = false) throws -> Tensor {
        try x.make("group_norm_frames") {
            x.backend.api.group_norm_frames!(x.handle, Int64(frames), Int64(groups), weight?.handle, bias?.handle, eps, silu ? 1 : 0, &$0)
        }
    }

    public static func groupNorm(_ x: Tensor, groups: Int, weight: Tensor?, bias: Tensor?, eps: Double) throws -> Tensor {
        try x.make("group_norm") { x.backend.api.group_norm!(x.handle, Int64(groups), weight?.handle, bias?.handle, eps, &$0) }
    }

    /// LayerNorm over the last dimension.
    public static func layerNorm(_ x: Tensor, weight: Tensor?, bias: Tensor?, eps: Double) throws -> Tensor {
        try x.make("layer_norm") { x.backend.api.layer_norm!(x.handle, 1, weight?.handle, bias?.handle, eps, &$0) }
    }

    /// LayerNorm over the last dimension of x (…, F, L, C), then `table` (F·C values) row f added to every
    /// row of frame f — in one pass on CUDA.
    public static func layerNorm(_ x: Tensor, weight: Tensor, bias: Tensor, eps: Double, addingPerFrame table: Tensor) throws -> Tensor {
        try x.make("layer_norm_add_frames") { x.backend.api.layer_norm_add_frames!(x.handle, weight.handle, bias.handle, eps, table.handle, &$0) }
    }

    public static func avgPool(_ x: Tensor, kernel: [Int], stride: [Int], padding: [Int]? = nil) throws -> Tensor {
        let n = kernel.count
        let k = kernel.map(Int64.init), s = stride.map(Int64.init), p = (padding ?? Array(repeating: 0, count: n)).map(Int64.init)
        return try x.make("avg_pool") { x.backend.api.avg_pool!(x.handle, k, s, p, Int32(n), &$0) }
    }

    /// Zero (or `value`) padding in torch.nn.functional.pad order: last dimension first, (before, after) pairs.
    public static func pad(_ x: Tensor, _ pads: [Int], value: Double = 0) throws -> Tensor {
        let p = pads.map(Int64.init)
        return try x.make("pad") { x.backend.api.pad!(x.handle, p, Int32(p.count), value, &$0) }
    }

    /// `x / max(‖x‖₂, eps)` along `dim`.
    public static func normalize(_ x: Tensor, dim: Int, eps: Double = 1e-12) throws -> Tensor {
        try x.make("normalize") { x.backend.api.l2_normalize!(x.handle, Int64(dim), eps, &$0) }
    }

    /// softmax(q·kᵀ·scale)·v over the last two dimensions (scale nil: 1/√head size).
    public static func attention(q: Tensor, k: Tensor, v: Tensor, scale: Double? = nil) throws -> Tensor {
        try q.make("attention") { q.backend.api.attention!(q.handle, k.handle, v.handle, scale ?? 0, &$0) }
    }

    /// Nearest-neighbour upsampling of the spatial dimensions by integer factors.
    public static func upsampleNearest(_ x: Tensor, factors: [Int]) throws -> Tensor {
        let f = factors.map(Int64.init)
        return try x.make("upsample_nearest") { x.backend.api.upsample_nearest!(x.handle, f, Int32(f.count), &$0) }
    }

    public static func maxPool(_ x: Tensor, kernel: [Int], stride: [Int], padding: [Int]) throws -> Tensor {
        let n = kernel.count
        precondition(stride.count == n && padding.count == n, "kernel, stride and padding need one entry per spatial dimension")
        let k = kernel.map(Int64.init), s = stride.map(Int64.init), p = padding.map(Int64.init)
        return try x.make("max_pool") { x.backend.api.max_pool!(x.handle, k, s, p, Int32(n), &$0) }
    }
}
