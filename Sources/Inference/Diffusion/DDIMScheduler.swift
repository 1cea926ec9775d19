/// diffusers' `DDIMScheduler` with LatentSync's `configs/scheduler_config.json`: `scaled_linear` betas
/// 0.00085…0.012 over 1000 training steps, `leading` timestep spacing with `steps_offset` 1,
/// `set_alpha_to_one` false (the last step lands on ᾱ₀), ε prediction, no clipping, η = 0.
public struct DDIMScheduler: Sendable {
    public static let trainingSteps = 1000
    /// ᾱ per training timestep, float32 as diffusers computes it (linspace of √β, squared, cumulative product).
    public let alphasCumprod: [Float]
    public let timesteps: [Int]
    public let stepCount: Int

    public init(steps: Int, betaStart: Double = 0.00085, betaEnd: Double = 0.012, stepsOffset: Int = 1) {
        precondition(steps >= 1 && steps <= Self.trainingSteps, "1…1000 inference steps")
        let n = Self.trainingSteps
        // As diffusers and torch compute it: √β in Python floats, torch.linspace in float32 (the first
        // half counted from the start, the second from the end), squared in float32; the cumulative
        // product accumulates in double (torch's CPU accumulation type) and stores float32.
        let lo = Float(betaStart.squareRoot()), hi = Float(betaEnd.squareRoot()), step = (hi - lo) / Float(n - 1)
        let roots = (0..<n).map { i in i < n / 2 ? lo + step * Float(i) : hi - step * Float(n - 1 - i) }
        var product = 1.0
        alphasCumprod = roots.map { r in product *= Double(1 - r * r); return Float(product) }
        let ratio = n / steps
        timesteps = (0..<steps).map { k in (steps - 1 - k) * ratio + stepsOffset }
        stepCount = steps
    }

    /// The final ᾱ used when a step goes below timestep 0 (`set_alpha_to_one` false: ᾱ₀).
    public var finalAlphaCumprod: Float { alphasCumprod[0] }

    /// The coefficients of one η = 0 step at `t`: x_prev = a·x_t + b·ε, and x̂₀ = c·x_t + d·ε.
    public func coefficients(at t: Int) -> (a: Double, b: Double, c: Double, d: Double) {
        let previous = t - Self.trainingSteps / stepCount
        let alpha = Double(alphasCumprod[t]), alphaPrevious = Double(previous >= 0 ? alphasCumprod[previous] : finalAlphaCumprod)
        let c = 1 / alpha.squareRoot(), d = -(1 - alpha).squareRoot() / alpha.squareRoot()
        return (alphaPrevious.squareRoot() * c, alphaPrevious.squareRoot() * d + (1 - alphaPrevious).squareRoot(), c, d)
    }

    /// One DDIM step: (x_{t_prev}, x̂₀) from x_t and the predicted noise.
    public func step(_ noise: Tensor, at t: Int, sample: Tensor) throws -> (previous: Tensor, original: Tensor) {
        let k = coefficients(at: t)
        let original = try sample.affine(scale: k.c) + noise.affine(scale: k.d)
        let previous = try sample.affine(scale: k.a) + noise.affine(scale: k.b)
        return (previous, original)
    }

    /// Classifier-free guidance: ε = ε_uncond + s·(ε_cond − ε_uncond).
    public static func guided(unconditional: Tensor, conditional: Tensor, scale: Double) throws -> Tensor {
        try unconditional + (conditional - unconditional).affine(scale: scale)
    }
}
