import CTorchShim

/// Autograd and in-place updates: what training needs beyond the forward operations. Parameters are
/// the same `Tensor`s the layers hold, so an optimiser's in-place step is what the model computes with next.
extension Tensor {
    /// Marks a leaf tensor as a parameter: operations on it are recorded and `backward` fills its gradient.
    public func requiresGrad(_ flag: Bool = true) throws {
        try backend.check(backend.api.set_requires_grad!(handle, flag ? 1 : 0), "requires_grad")
    }

    /// Back-propagates from this scalar; gradients accumulate into the leaves that require them.
    public func backward() throws { try backend.check(backend.api.backward!(handle), "backward") }

    /// The accumulated gradient (sharing storage with it), or nil before any backward reached this leaf.
    public func gradient() throws -> Tensor? {
        var out: OpaquePointer?
        try backend.check(backend.api.grad!(handle, &out), "grad")
        return out.map { Tensor($0, backend) }
    }

    /// Overwrites this tensor's values with `source`'s (converted to this dtype and device), outside autograd.
    public func copy(from source: Tensor) throws { try backend.check(backend.api.copy_into!(handle, source.handle), "copy") }

    /// Zeros shaped, typed and placed like this tensor.
    public func zerosLike() throws -> Tensor { try make("zeros_like") { backend.api.zeros_like!(handle, &$0) } }

    /// The single value of a one-element tensor.
    public func scalar() throws -> Float {
        let values = try floats()
        guard values.count == 1 else { throw TorchError.operation("scalar", "the tensor has \(values.count) elements, not 1") }
        return values[0]
    }
}

extension Functional {
    /// Mean binary cross-entropy of probabilities `x` against 0/1 targets `y`, in float32 (`F.binary_cross_entropy`).
    public static func binaryCrossEntropy(_ x: Tensor, _ y: Tensor) throws -> Tensor {
        try x.make("binary_cross_entropy") { x.backend.api.binary_cross_entropy!(x.handle, y.handle, &$0) }
    }
}

/// Operations over a model's parameter list (one backend call for the whole list).
extension TorchBackend {
    private func withHandles<T>(_ tensors: [Tensor], _ body: (UnsafePointer<OpaquePointer?>?, Int32) throws -> T) rethrows -> T {
        let handles: [OpaquePointer?] = tensors.map(\.handle)
        return try handles.withUnsafeBufferPointer { try body($0.baseAddress, Int32($0.count)) }
    }

    /// Drops the parameters' gradients (`zero_grad(set_to_none=True)`).
    public func clearGradients(_ parameters: [Tensor]) throws {
        try withHandles(parameters) { try check(api.clear_grads!($0, $1), "clear gradients") }
    }

    /// Multiplies every gradient by `factor`; returns whether any gradient holds an infinity or NaN.
    public func scaleGradients(_ parameters: [Tensor], by factor: Double) throws -> Bool {
        var found: Int32 = 0
        try withHandles(parameters) { try check(api.scale_grads!($0, $1, factor, &found), "scale gradients") }
        return found != 0
    }

    /// `clip_grad_norm_`: returns the gradients' total 2-norm before clipping them to `maxNorm`.
    public func clipGradientNorm(_ parameters: [Tensor], maxNorm: Double) throws -> Double {
        var total = 0.0
        try withHandles(parameters) { try check(api.clip_grad_norm!($0, $1, maxNorm, &total), "clip gradient norm") }
        return total
    }

    /// One AdamW update of `parameters` with their moment buffers (`step` counts from 1).
    public func adamwStep(_ parameters: [Tensor], firstMoments: [Tensor], secondMoments: [Tensor], step: Int,
                          learningRate: Double, betas: (Double, Double), eps: Double, weightDecay: Double) throws {
        precondition(parameters.count == firstMoments.count && parameters.count == secondMoments.count, "one pair of moments per parameter")
        try withHandles(parameters) { p, n in
            try withHandles(firstMoments) { m, _ in
                try withHandles(secondMoments) { v, _ in
                    try check(api.adamw_step!(p, m, v, n, Int64(step), learningRate, betas.0, betas.1, eps, weightDecay), "AdamW step")
                }
            }
        }
    }

    /// Replaces each tensor (one per replica, possibly on different devices) by the mean of all of them.
    public func meanAcross(_ replicas: [Tensor]) throws {
        try withHandles(replicas) { try check(api.mean_across!($0, $1), "mean across replicas") }
    }
}
