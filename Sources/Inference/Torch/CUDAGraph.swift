import CTorchShim

/// A recorded sequence of CUDA work (`torch.cuda.CUDAGraph`), replayed with one launch. A model's
/// forward is ~1,500 kernels, each of which costs a Swift → C → libtorch dispatch on the CPU; where
/// the kernels are short (the U-Net at 256 px) that dispatch, not the GPU, sets the pace. A replay
/// reads and writes exactly the memory the capture did: inputs are copied into the tensors the
/// capture read, results are read from the tensors it produced (overwritten by the next replay).
public final class CUDAGraph: @unchecked Sendable {
    // @unchecked: the handle is only used through the backend's calls, by one thread at a time.
    let handle: OpaquePointer
    public let backend: TorchBackend

    private init(_ handle: OpaquePointer, _ backend: TorchBackend) { self.handle = handle; self.backend = backend }
    deinit { backend.api.graph_release!(handle) }

    /// Records the work `body` queues on `device` (CUDA) from this thread; nothing runs until
    /// `replay()`. Tensors `body` creates live in the graph's memory pool, shared with
    /// `sharingPoolWith`'s when given (graphs that are replayed one after another).
    /// `body` must not wait for the device or copy from the host.
    public static func capture<T>(on device: Device, backend: TorchBackend, sharingPoolWith other: CUDAGraph? = nil,
                                  _ body: () throws -> T) throws -> (graph: CUDAGraph, result: T) {
        guard case let .cuda(index) = device else { throw TorchError.device("CUDA graphs need a CUDA device, not \(device)") }
        var out: OpaquePointer?
        try backend.check(backend.api.graph_capture_begin!(Int32(index), other?.handle, &out), "begin a CUDA graph capture")
        let graph = CUDAGraph(out!, backend)
        let result: T
        do { result = try body() } catch {
            _ = backend.api.graph_capture_end!(graph.handle)  // leave capture mode; the capture's own error is the one to report
            throw error
        }
        try backend.check(backend.api.graph_capture_end!(graph.handle), "end a CUDA graph capture")
        return (graph, result)
    }

    /// Runs the recorded work again, on the current stream.
    public func replay() throws { try backend.check(backend.api.graph_replay!(handle), "replay a CUDA graph") }
}
