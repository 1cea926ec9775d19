import CTorchShim

/// How work runs on the backend: autograd and autocast modes (thread-local scopes), CUDA
/// synchronisation, allocator statistics, TF32 and seeding.
extension TorchBackend {
    /// Runs `body` in libtorch's inference mode (no autograd bookkeeping at all), as model evaluation should.
    public func inferenceMode<T>(_ body: () throws -> T) throws -> T { try scoped(PD_GUARD_INFERENCE, body) }

    /// Runs `body` with autograd recording off (`torch.no_grad()`).
    public func noGrad<T>(_ body: () throws -> T) throws -> T { try scoped(PD_GUARD_NO_GRAD, body) }

    /// Runs `body` under CUDA autocast to `dtype` (`torch.autocast("cuda", dtype)`): matmuls and
    /// convolutions on CUDA tensors run in half precision, numerically sensitive ops stay float32.
    /// CPU tensors are unaffected.
    public func autocast<T>(_ dtype: DType, _ body: () throws -> T) throws -> T {
        switch dtype {
        case .float16: return try scoped(PD_GUARD_AUTOCAST_FP16, body)
        case .bfloat16: return try scoped(PD_GUARD_AUTOCAST_BF16, body)
        default: throw TorchError.device("autocast needs float16 or bfloat16, not \(dtype)")
        }
    }

    private func scoped<T>(_ kind: pd_guard_kind, _ body: () throws -> T) throws -> T {
        guard let guardHandle = api.guard_enter!(Int32(kind.rawValue)) else {
            throw TorchError.operation("guard \(kind.rawValue)", api.last_error!().map { String(cString: $0) } ?? "unknown error")
        }
        defer { api.guard_leave!(guardHandle) }
        return try body()
    }

    /// Waits until the device has finished its queued work (timings need this; a no-op on the CPU).
    public func synchronize(_ device: Device) throws {
        guard case let .cuda(index) = device else { return }
        try check(api.synchronize!(Int32(index)), "synchronize \(device)")
    }

    /// Whether the backend was built against a CUDA libtorch.
    public var builtWithCUDA: Bool { api.built_with_cuda!() != 0 }

    public struct MemoryStats: Sendable, Equatable {
        public var allocated: Int, peakAllocated: Int, reserved: Int
    }

    /// The CUDA caching allocator's statistics for `device` (nil on the CPU).
    public func memoryStats(_ device: Device) throws -> MemoryStats? {
        guard case let .cuda(index) = device else { return nil }
        var allocated: Int64 = 0, peak: Int64 = 0, reserved: Int64 = 0
        try check(api.memory_stats!(Int32(index), &allocated, &peak, &reserved), "memory statistics of \(device)")
        return MemoryStats(allocated: Int(allocated), peakAllocated: Int(peak), reserved: Int(reserved))
    }

    public func resetPeakMemory(_ device: Device) throws {
        guard case let .cuda(index) = device else { return }
        try check(api.reset_peak_memory!(Int32(index)), "reset peak memory of \(device)")
    }

    /// Runs `body` under libtorch's profiler (operators, and CUDA kernels when `cuda`) and writes the
    /// recording as a Chrome trace to `path` (`Benchmarks/ModelBenchmark/kernel_summary.py` sums it up).
    public func profiled<T>(cuda: Bool, to path: String, _ body: () throws -> T) throws -> T {
        try check(api.profiler_start!(cuda ? 1 : 0), "start the profiler")
        let result: T
        do { result = try body() } catch {
            _ = path.withCString { api.profiler_stop!($0) }
            throw error
        }
        try check(path.withCString { api.profiler_stop!($0) }, "write the profile to \(path)")
        return result
    }

    /// Allows TensorFloat-32 on CUDA (PyTorch's defaults: convolutions yes, matmuls no). Parity
    /// checks turn it off; throughput runs keep PyTorch's defaults so comparisons are like for like.
    public func allowTF32(matmul: Bool, convolution: Bool) throws {
        try check(api.set_tf32!(matmul ? 1 : 0, convolution ? 1 : 0), "set TF32")
    }

    /// Lets cuDNN try its convolution algorithms once per input shape and keep the fastest
    /// (`torch.backends.cudnn.benchmark`): worth it when the same shapes repeat, as in denoising loops.
    public func cudnnBenchmark(_ enabled: Bool) throws { try check(api.set_cudnn_benchmark!(enabled ? 1 : 0), "cudnn benchmark") }

    /// Seeds libtorch's generators (CPU and every CUDA device).
    public func manualSeed(_ seed: UInt64) throws { try check(api.manual_seed!(seed), "manual_seed") }
}
