import Synchronization

extension UNet3DConditionModel {
    /// Runs the U-Net's forwards on CUDA as replays of captured CUDA graphs: one per input shape and
    /// path (whole U-Net, or DeepCache's short path), captured the second time that shape and path
    /// come (the first runs normally and lets cuDNN and cuBLAS settle their choices), then replayed
    /// with the step's sample, timestep features and context copied into the captured inputs. The
    /// kernels and their order are those of a normal forward, so the results are the same; what goes
    /// is the CPU's per-kernel dispatch (~1,500 kernels per forward), which at 256 px takes longer
    /// than the kernels themselves. On the CPU, or where a capture fails, forwards run normally.
    ///
    /// DeepCache: a full step's replay leaves its cached state in the graph's own tensor, which the
    /// short path's graph was captured reading — so the short path is captured, and replayed, only
    /// when the window's cache holds that tensor.
    ///
    /// All graphs share one memory pool (one forward's activations, not one per graph). That is safe
    /// because nothing a graph leaves behind is read after another graph has replayed, except that
    /// state: outputs are copied out right after their replay, and the state is read only by the short
    /// path of the same shapes, replayed (within a window) with no other graph in between; the short
    /// path is captured while the state is alive, so none of its own memory overlaps it.
    public final class Graphs: @unchecked Sendable {
        // @unchecked: every call holds `lock` (the captured inputs and outputs are shared state).
        public let unet: UNet3DConditionModel
        private let lock = Mutex(())
        private struct Key: Hashable {
            let sample: [Int], context: [Int], cached: Bool
        }
        private final class Captured {
            let graph: CUDAGraph, sample: Tensor, features: Tensor, context: Tensor, output: Tensor
            /// Full path: the cached state it writes; short path: the cached state it reads.
            let hidden: Tensor?
            init(graph: CUDAGraph, sample: Tensor, features: Tensor, context: Tensor, output: Tensor, hidden: Tensor?) {
                self.graph = graph; self.sample = sample; self.features = features; self.context = context; self.output = output; self.hidden = hidden
            }
        }
        private var captured: [Key: Captured] = [:], seen: [Key: Int] = [:], failed: [Key: String] = [:]
        /// Forwards replayed, forwards run normally, graphs captured.
        public private(set) var replays = 0, eager = 0, captures = 0
        /// Why a shape's capture failed (its forwards then run normally).
        public var failures: [String] { lock.withLock { _ in failed.values.sorted() } }

        public init(_ unet: UNet3DConditionModel) { self.unet = unet }

        /// The U-Net's `callAsFunction`, through a graph where it can.
        public func callAsFunction(_ sample: Tensor, timestep: Int, context: Tensor, cache: DeepCache? = nil, step index: Int = 0) throws -> Tensor {
            try lock.withLock { _ in
                let device = sample.device
                let features = try unet.timestepFeatures(timestep, batch: sample.shape[0], device: device, backend: sample.backend)
                guard case .cuda = device else { return try normal(sample, features, context, cache, index) }
                let cached = unet.takesCachedPath(cache, step: index)
                let key = Key(sample: try sample.shape, context: try context.shape, cached: cached)
                // The short path reads the state a full replay of the same shapes leaves behind.
                let fullState = captured[Key(sample: key.sample, context: key.context, cached: false)]?.hidden
                if cached, cache?.hidden == nil || cache?.hidden !== fullState { return try normal(sample, features, context, cache, index) }
                if let graph = captured[key] {
                    try graph.sample.copy(from: sample); try graph.features.copy(from: features); try graph.context.copy(from: context)
                    try graph.graph.replay()
                    if let cache {
                        if cached { cache.cachedSteps += 1 } else { cache.fullSteps += 1; cache.hidden = graph.hidden }
                    }
                    replays += 1
                    return try graph.output.cloned()
                }
                seen[key, default: 0] += 1
                guard seen[key]! >= 2, failed[key] == nil else { return try normal(sample, features, context, cache, index) }
                // Capture. Inputs the graph reads are allocated outside it; the forward's side effects on
                // the cache (its state, its counters) happen once, here, and are undone if the capture fails.
                let inputs = (sample: try sample.cloned(), features: features, context: try context.cloned())
                let before = (cache?.hidden, cache?.fullSteps ?? 0, cache?.cachedSteps ?? 0)
                do {
                    let (graph, output) = try CUDAGraph.capture(on: device, backend: sample.backend, sharingPoolWith: captured.values.first?.graph) {
                        try unet.forward(inputs.sample, features: inputs.features, context: inputs.context, cache: cache, step: index, record: nil)
                    }
                    let entry = Captured(graph: graph, sample: inputs.sample, features: inputs.features, context: inputs.context, output: output,
                                         hidden: cache?.hidden)
                    captured[key] = entry
                    captures += 1
                    try graph.replay()
                    replays += 1
                    return try output.cloned()
                } catch {
                    failed[key] = "CUDA graph of \(key.sample)\(cached ? " (DeepCache's short path)" : ""): \(error)"
                    if let cache { (cache.hidden, cache.fullSteps, cache.cachedSteps) = before }
                    return try normal(sample, features, context, cache, index)
                }
            }
        }

        /// A forward dispatched op by op.
        private func normal(_ sample: Tensor, _ features: Tensor, _ context: Tensor, _ cache: DeepCache?, _ index: Int) throws -> Tensor {
            eager += 1
            return try unet.forward(sample, features: features, context: context, cache: cache, step: index, record: nil)
        }
    }
}

extension Tensor {
    /// A copy with its own memory (same shape, type, device and layout).
    public func cloned() throws -> Tensor {
        let copy = try zerosLike()
        try copy.copy(from: self)
        return copy
    }
}
