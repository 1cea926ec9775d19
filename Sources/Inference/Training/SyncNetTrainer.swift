#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// A batch of StableSyncNet training samples on the host, as LatentSync's SyncNet dataset yields
/// them: per sample 16 frames' lower halves (16 × H × W × 3 RGB bytes, as decoded), the true
/// 80 × 52 mel window, and the label (1 = the frames are the mel's own window, 0 = another window of
/// the same clip). Frames stay bytes until they reach the device (a quarter of float32's upload);
/// `StableSyncNet.visualInput` turns them into the model's 48 × H × W input in [−1, 1] there.
public struct SyncNetBatch: Sendable {
    public var frames: [UInt8]
    public var mel: [Float]
    public var labels: [Float]
    /// The model's input shape of one sample, (48, height, width).
    public var frameShape: [Int]
    public var count: Int { labels.count }

    public init(frames: [UInt8], mel: [Float], labels: [Float], frameShape: [Int]) {
        precondition(frames.count == labels.count * frameShape.reduce(1, *) && mel.count == labels.count * 80 * 52,
                     "frames and mel windows must hold one sample per label")
        self.frames = frames; self.mel = mel; self.labels = labels; self.frameShape = frameShape
    }

    /// Samples `range` (a replica's shard).
    public func slice(_ range: Range<Int>) -> SyncNetBatch {
        let f = frameShape.reduce(1, *), m = 80 * 52
        return SyncNetBatch(frames: Array(frames[(range.lowerBound * f)..<(range.upperBound * f)]),
                            mel: Array(mel[(range.lowerBound * m)..<(range.upperBound * m)]),
                            labels: Array(labels[range]), frameShape: frameShape)
    }
}

/// A batch (or a replica's shard of one) on its device, ready for a step. Uploading is separate from
/// stepping so that a loader thread can move the next batch while the current step computes.
public struct SyncNetDeviceBatch: @unchecked Sendable {
    // @unchecked: the tensors are never mutated after the upload.
    public let frames: Tensor, mel: Tensor, labels: Tensor
    public let count: Int
}

/// Mixed precision for training: float32 throughout, or CUDA autocast to float16 (with loss scaling)
/// or bfloat16. The loss is always computed in float32, as the reference does.
public enum TrainingPrecision: String, Sendable, Codable, CaseIterable {
    case float32 = "no", float16 = "fp16", bfloat16 = "bf16"
}

/// What one optimiser step did.
public struct TrainingStepReport: Sendable {
    /// Mean BCE over every sample of the step (all micro-batches and replicas).
    public var loss: Double
    /// Total gradient 2-norm before clipping (of the unscaled gradients).
    public var gradientNorm: Double
    /// The update was skipped because float16 gradients overflowed (the loss scale was lowered).
    public var skipped: Bool
}

/// Trains a StableSyncNet with LatentSync's recipe: BCE on the cosine of the two unit embeddings,
/// AdamW, gradient clipping, optional autocast + loss scaling, gradient accumulation over
/// micro-batches, and data parallelism over replicas (one per device; each computes its shard,
/// the gradients are averaged across replicas — an all-reduce — and every replica applies the same
/// update, as DistributedDataParallel does). The all-reduce is the one place a multi-node launcher
/// would substitute its collective.
public final class SyncNetTrainer: @unchecked Sendable {
    // @unchecked: replicas run concurrently only inside `step` and touch disjoint replicas; the scaler and
    // everything else change on the caller's thread between those phases.
    public struct Replica: @unchecked Sendable {
        // @unchecked: a replica is used by one thread at a time (its own task within a step).
        public let device: Device
        public let model: StableSyncNet
        public let collector: ParameterCollector
        public let optimizer: AdamW
    }

    public let config: StableSyncNet.Config
    public let replicas: [Replica]
    public let precision: TrainingPrecision
    public let maxGradientNorm: Double
    public private(set) var scaler: GradScaler
    let backend: TorchBackend

    /// `initial`: a checkpoint to start from (strictly loaded), or nil for fresh weights from `seed`
    /// (PyTorch's default initialisation). Every replica starts from the same weights.
    public init(config: StableSyncNet.Config, devices: [Device], precision: TrainingPrecision, optimizer: AdamW.Settings,
                maxGradientNorm: Double = 1.0, initial: (any TensorArchive)? = nil, seed: UInt64 = 42, backend: TorchBackend? = nil) throws {
        precondition(!devices.isEmpty, "training needs at least one device")
        let backend = try backend ?? TorchBackend.shared()
        if precision != .float32, let cpu = devices.first(where: { $0 == .cpu }) {
            throw TorchError.device("mixed precision (\(precision.rawValue)) runs on CUDA only; \(cpu) trains in float32 (set mixed_precision = \"no\")")
        }
        self.config = config; self.precision = precision; self.maxGradientNorm = maxGradientNorm; self.backend = backend
        scaler = GradScaler()
        replicas = try devices.map { device in
            let collector = ParameterCollector()
            let model: StableSyncNet
            if let initial {
                let loader = StrictLoader(initial)
                model = try StableSyncNet(WeightSource(loader, device: device, backend: backend, collector: collector), config: config)
                _ = try loader.finish()
            } else {
                model = try StableSyncNet(WeightSource(.random(RandomWeights(seed: seed)), device: device, backend: backend, collector: collector), config: config)
            }
            for p in collector.parameters { try p.requiresGrad() }
            let trainable = zip(collector.keys, collector.tensors).filter { !collector.bufferKeys.contains($0.0) }
            return Replica(device: device, model: model, collector: collector,
                           optimizer: try AdamW(keys: trainable.map(\.0), parameters: trainable.map(\.1), settings: optimizer))
        }
    }

    /// The optimiser's step count (updates applied).
    public var optimizerStep: Int { replicas[0].optimizer.step }

    /// Copies a host batch to the replicas' devices, split evenly across them (one shard per replica).
    public func upload(_ batch: SyncNetBatch) throws -> [SyncNetDeviceBatch] {
        let n = replicas.count
        guard batch.count % n == 0 else {
            throw TorchError.operation("data parallel", "a micro-batch of \(batch.count) samples does not split evenly over \(n) devices")
        }
        let per = batch.count / n, frameSize = batch.frameShape.reduce(1, *), melSize = 80 * 52
        // Straight from the host arrays' storage: no intermediate Swift copies of the batch.
        func part<T>(_ values: [T], _ r: Int, _ size: Int, _ dtype: DType, _ shape: [Int], _ device: Device) throws -> Tensor {
            try values.withUnsafeBytes { raw in
                let bytes = per * size * MemoryLayout<T>.stride, start = r * bytes
                return try Tensor(bytes: UnsafeRawBufferPointer(rebasing: raw[start..<(start + bytes)]), dtype: dtype, shape: shape,
                                  device: device, backend: backend)
            }
        }
        let (h, w) = (batch.frameShape[1], batch.frameShape[2])
        return try replicas.enumerated().map { r, replica in
            let bytes = try part(batch.frames, r, frameSize, .uint8, [per, batch.frameShape[0] / 3, h, w, 3], replica.device)
            return SyncNetDeviceBatch(frames: try StableSyncNet.visualInput(bytes),
                                      mel: try part(batch.mel, r, melSize, .float32, [per, 1, 80, 52], replica.device),
                                      labels: try part(batch.labels, r, 1, .float32, [per], replica.device), count: per)
        }
    }

    /// One optimiser step over `microBatches` (gradient accumulation); each micro-batch is split evenly
    /// across the replicas.
    public func step(_ microBatches: [SyncNetBatch]) throws -> TrainingStepReport {
        try step(uploaded: microBatches.map(upload))
    }

    /// One optimiser step over micro-batches already on the devices (`upload`).
    public func step(uploaded microBatches: [[SyncNetDeviceBatch]]) throws -> TrainingStepReport {
        precondition(!microBatches.isEmpty && microBatches.allSatisfy { $0.count == replicas.count }, "one shard per replica per micro-batch")
        for replica in replicas { try backend.clearGradients(replica.optimizer.parameters) }
        let lossScale = precision == .float16 ? scaler.scale : 1
        var lossSum = 0.0, samples = 0
        for shards in microBatches {
            let losses = try perReplica { r, replica in
                let shard = shards[r]
                let loss = try Functional.binaryCrossEntropy(self.autocasting { try replica.model.cosine(frames: shard.frames, mel: shard.mel) }, shard.labels)
                // Mean over the effective batch: replicas are averaged by the all-reduce, micro-batches here.
                try loss.affine(scale: lossScale / Double(microBatches.count)).backward()
                return try Double(loss.scalar()) * Double(shard.count)
            }
            lossSum += losses.reduce(0, +); samples += shards.reduce(0) { $0 + $1.count }
        }
        if replicas.count > 1 {
            for i in replicas[0].optimizer.parameters.indices {
                let grads = try replicas.compactMap { try $0.optimizer.parameters[i].gradient() }
                if grads.count == replicas.count { try backend.meanAcross(grads) }
            }
        }
        // Every replica now holds the same gradients; each unscales, clips and updates its own copy.
        let outcomes = try perReplica { _, replica -> (Bool, Double) in
            let params = replica.optimizer.parameters
            // Only float16 gradients can overflow the loss scale; otherwise a non-finite norm is the signal.
            let overflow = self.precision == .float16 ? try self.backend.scaleGradients(params, by: 1 / lossScale) : false
            let norm = try self.backend.clipGradientNorm(params, maxNorm: self.maxGradientNorm)
            return (overflow || !norm.isFinite, norm)
        }
        let skipped = outcomes.contains { $0.0 }
        if !skipped { _ = try perReplica { _, replica in try replica.optimizer.update() } }
        if precision == .float16 { scaler.update(foundNonFinite: skipped) }
        return TrainingStepReport(loss: lossSum / Double(samples), gradientNorm: outcomes[0].1, skipped: skipped)
    }

    /// The cosine similarities of a batch (no gradients), computed on the first replica.
    public func cosines(_ batch: SyncNetBatch) throws -> [Float] {
        let replica = replicas[0]
        return try backend.inferenceMode {
            try autocasting { try replica.model.cosine(batch, device: replica.device, backend: backend).floats() }
        }
    }

    /// The weights as a checkpoint's tensors (from the first replica).
    public func modelState() throws -> [String: HostTensor] { try replicas[0].collector.state() }

    /// Optimiser moments (first replica; all replicas hold the same).
    public func optimizerState() throws -> [String: HostTensor] { try replicas[0].optimizer.state() }

    /// Restores optimiser moments, step count and loss scale (the weights come in through `initial`).
    public func restore(optimizer archive: any TensorArchive, step: Int, scaler: GradScaler) throws {
        for replica in replicas { try replica.optimizer.restore(archive, step: step) }
        self.scaler = scaler
    }

    // MARK: - Pieces

    private func autocasting<T>(_ body: () throws -> T) throws -> T {
        switch precision {
        case .float32: try body()
        case .float16: try backend.autocast(.float16, body)
        case .bfloat16: try backend.autocast(.bfloat16, body)
        }
    }

    /// Runs `body` for every replica, concurrently when there are several (autograd and autocast
    /// state are per thread, so each replica's thread enters its own scopes).
    private func perReplica<T: Sendable>(_ body: @escaping @Sendable (Int, Replica) throws -> T) throws -> [T] {
        let replicas = self.replicas
        return try concurrentMap(replicas.count, workers: replicas.count) { try body($0, replicas[$0]) }
    }
}

extension StableSyncNet {
    /// cos(v, a) ∈ [0, 1] of a batch's frames and mel windows (both embeddings are non-negative unit
    /// vectors; the clamp keeps rounding in half precision from pushing it a hair past 1, which BCE rejects).
    public func cosine(_ batch: SyncNetBatch, device: Device, backend: TorchBackend? = nil) throws -> Tensor {
        let (n, h, w) = (batch.count, batch.frameShape[1], batch.frameShape[2])
        let frames = try batch.frames.withUnsafeBytes {
            try Tensor(bytes: $0, dtype: .uint8, shape: [n, batch.frameShape[0] / 3, h, w, 3], device: device, backend: backend)
        }
        let mel = try Tensor(batch.mel, shape: [n, 1, 80, 52], device: device, backend: backend)
        return try cosine(frames: Self.visualInput(frames), mel: mel)
    }

    /// (B, 16, H, W, 3) RGB bytes → the visual tower's (B, 48, H, W) input, `u / 127.5 − 1` (the
    /// reference's (B, 16, 3, H, W) frames in [−1, 1] with frames and colours folded into channels).
    public static func visualInput(_ bytes: Tensor) throws -> Tensor {
        let s = try bytes.shape
        return try bytes.to(bytes.device, .float32).permuted([0, 1, 4, 2, 3]).reshaped([s[0], s[1] * 3, s[2], s[3]])
            .affine(scale: 1 / 127.5, shift: -1)
    }

    /// The same for (B, 48, H, W) frames and (B, 1, 80, 52) mel windows already on the model's device.
    public func cosine(frames: Tensor, mel: Tensor) throws -> Tensor {
        try Self.cosine(visualEmbedding(frames), audioEmbedding(mel)).clamped(0, 1)
    }
}
