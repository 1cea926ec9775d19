/// `torch.optim.AdamW` over a parameter list: the update runs in the backend (one call per step for
/// all parameters), the moment buffers live beside the parameters on their device, and the state
/// round-trips through checkpoints under PyTorch's names (`exp_avg`, `exp_avg_sq`, `step`).
public final class AdamW {
    public struct Settings: Sendable, Equatable, Codable {
        public var learningRate: Double
        public var beta1: Double, beta2: Double
        public var eps: Double
        public var weightDecay: Double

        /// LatentSync's SyncNet settings: lr 1e-5, torch's betas and eps, weight decay 0.01.
        public init(learningRate: Double = 1e-5, beta1: Double = 0.9, beta2: Double = 0.999, eps: Double = 1e-8, weightDecay: Double = 0.01) {
            self.learningRate = learningRate; self.beta1 = beta1; self.beta2 = beta2; self.eps = eps; self.weightDecay = weightDecay
        }
    }

    public let keys: [String]
    public let parameters: [Tensor]
    public var settings: Settings
    public private(set) var firstMoments: [Tensor]
    public private(set) var secondMoments: [Tensor]
    /// Updates applied so far (steps skipped for overflowing fp16 gradients do not count, as in torch).
    public private(set) var step = 0

    public init(keys: [String], parameters: [Tensor], settings: Settings) throws {
        precondition(keys.count == parameters.count, "one key per parameter")
        self.keys = keys; self.parameters = parameters; self.settings = settings
        firstMoments = try parameters.map { try $0.zerosLike() }
        secondMoments = try parameters.map { try $0.zerosLike() }
    }

    /// Applies one update from the parameters' current gradients.
    public func update() throws {
        guard let backend = parameters.first?.backend else { return }
        step += 1
        try backend.adamwStep(parameters, firstMoments: firstMoments, secondMoments: secondMoments, step: step,
                              learningRate: settings.learningRate, betas: (settings.beta1, settings.beta2), eps: settings.eps,
                              weightDecay: settings.weightDecay)
    }

    /// The moments as host tensors named `exp_avg.<key>` / `exp_avg_sq.<key>`.
    public func state() throws -> [String: HostTensor] {
        var out: [String: HostTensor] = [:]
        for (i, key) in keys.enumerated() {
            out["exp_avg.\(key)"] = try HostTensor(firstMoments[i].floats(), shape: firstMoments[i].shape)
            out["exp_avg_sq.\(key)"] = try HostTensor(secondMoments[i].floats(), shape: secondMoments[i].shape)
        }
        return out
    }

    /// Restores moments saved by `state()` and the step count; every parameter's moments must be present.
    public func restore(_ archive: any TensorArchive, step: Int) throws {
        for (i, key) in keys.enumerated() {
            for (name, target) in [("exp_avg.\(key)", firstMoments[i]), ("exp_avg_sq.\(key)", secondMoments[i])] {
                let expected = try target.shape
                guard let shape = archive.shape(of: name) else { throw WeightError.missing(key: name, similar: []) }
                guard shape == expected else { throw WeightError.shapeMismatch(key: name, expected: expected, found: shape) }
                try target.copy(from: Tensor(archive.tensor(name).floats(), shape: shape, backend: target.backend))
            }
        }
        self.step = step
    }
}

/// `torch.cuda.amp.GradScaler` for float16 training: the loss is multiplied by `scale` before backward;
/// gradients are divided by it before clipping; a step whose gradients overflowed is skipped and the
/// scale halved; after `growthInterval` clean steps in a row the scale doubles.
public struct GradScaler: Sendable, Equatable, Codable {
    public var scale: Double
    public var growthTracker = 0
    public var growthFactor = 2.0, backoffFactor = 0.5
    public var growthInterval = 2000

    public init(scale: Double = 65536) { self.scale = scale }

    public mutating func update(foundNonFinite: Bool) {
        if foundNonFinite {
            scale *= backoffFactor; growthTracker = 0
        } else {
            growthTracker += 1
            if growthTracker == growthInterval { scale *= growthFactor; growthTracker = 0 }
        }
    }
}
