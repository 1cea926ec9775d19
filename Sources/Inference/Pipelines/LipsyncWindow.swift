/// One 16-frame window of LatentSync's generator (`LipsyncPipeline.__call__`'s loop body): VAE
/// latents of the masked and the reference frames, DDIM denoising of a shared initial noise with
/// classifier-free guidance on zeroed audio, decoding, and pasting the generated mouth region over
/// the original frame. Frames are aligned R×R faces; the reference frames are the window's own frames.
public struct LipsyncWindow: Sendable {
    public let unet: UNet3DConditionModel
    public let vae: AutoencoderKL
    public let scheduler: DDIMScheduler
    public let guidance: Double
    public let device: Device
    /// DeepCache's interval (nil: every step runs the whole U-Net).
    public let deepCache: Int?
    /// On CUDA, the U-Net's forwards replay captured CUDA graphs (shared by every window of this value).
    public let graphs: UNet3DConditionModel.Graphs?

    /// - Parameter cudaGraphs: replay the U-Net's forwards as CUDA graphs on a CUDA device (same
    ///   results, without the CPU's per-kernel dispatch); off, every forward is dispatched op by op.
    public init(unet: UNet3DConditionModel, vae: AutoencoderKL, scheduler: DDIMScheduler, guidance: Double = 1.5, device: Device = .cpu,
                deepCache: Int? = nil, cudaGraphs: Bool = true) {
        self.unet = unet; self.vae = vae; self.scheduler = scheduler; self.guidance = guidance; self.device = device; self.deepCache = deepCache
        if case .cuda = device, cudaGraphs { graphs = UNet3DConditionModel.Graphs(unet) } else { graphs = nil }
    }

    /// The mask as the pipeline uses it: per pixel of the R×R face, 1 = keep the original, 0 = generate.
    public struct Mask: Sendable {
        public let size: Int
        /// `mask_u8 / 255` (float64, as the reference divides).
        public let values: [Double]

        public init(u8: [UInt8], size: Int) {
            precondition(u8.count == size * size, "a \(size)×\(size) mask needs \(size * size) values")
            self.size = size; values = u8.map { Double($0) / 255 }
        }

        /// The latent-resolution mask channel: the pixel at (8i, 8j), float32.
        public var latent: [Float] {
            let s = size / 8
            return (0..<(s * s)).map { Float(values[(($0 / s) * 8) * size + ($0 % s) * 8]) }
        }
    }

    /// Intermediate values for parity checks.
    public struct Trace {
        public var maskedLatents: Tensor?, referenceLatents: Tensor?, firstNoisePrediction: Tensor?
        public var latents: [Tensor] = []
        public init() {}
    }

    /// - Parameters:
    ///   - frames: F aligned RGB frames, HWC u8, `mask.size` square.
    ///   - audio: (F, 50, 384) Whisper chunks of the same frames.
    ///   - noise: the initial noise (4 × R/8 × R/8), shared by every frame.
    /// - Returns: the pasted frames in the [−1, 1] convention, (F, 3, R, R) float32 on the device.
    public func generate(frames: [[UInt8]], mask: Mask, audio: Tensor, noise: [Float], trace: UnsafeMutablePointer<Trace>? = nil) throws -> Tensor {
        let r = mask.size, n = frames.count, plane = r * r, h = r / 8
        // The frames travel as bytes and become floats on the device (a quarter of the upload, no CPU
        // conversion): reference = (u8/255 − 0.5)/0.5 in float32, masked = float32(float64(reference) · mask),
        // the reference's arithmetic.
        var bytes = [UInt8](); bytes.reserveCapacity(n * plane * 3)
        for (f, frame) in frames.enumerated() {
            precondition(frame.count == plane * 3, "frame \(f) is not \(r)×\(r) RGB")
            bytes += frame
        }
        let u8 = try bytes.withUnsafeBytes { try Tensor(bytes: $0, dtype: .uint8, shape: [n, r, r, 3], device: device) }
        let referenceImages = try (u8.permuted([0, 3, 1, 2]).contiguous(channelsLast: false).to(device, .float32) / Tensor([255], shape: [1], device: device))
            .affine(scale: 1, shift: -0.5).affine(scale: 2)
        let maskValues = try mask.values.withUnsafeBytes { try Tensor(bytes: $0, dtype: .float64, shape: [1, 1, r, r], device: device) }
        let maskedImages = try (referenceImages.to(device, .float64) * maskValues).to(device, .float32)
        // (F, 4, h, w) → (1, 4, F, h, w).
        func latents(_ images: Tensor) throws -> Tensor {
            try Tensor.cat(Self.chunks(n, side: r).map { try vae.latents(images.narrowed(0, $0)) }, dim: 0).permuted([1, 0, 2, 3]).reshaped([1, 4, n, h, h])
        }
        let maskedLatents = try latents(maskedImages)
        let referenceLatents = try latents(referenceImages)
        trace?.pointee.maskedLatents = maskedLatents
        trace?.pointee.referenceLatents = referenceLatents
        let maskChannel = try Tensor(Array((0..<n).map { _ in mask.latent }.joined()), shape: [1, 1, n, h, h], device: device)
        let conditions = try Tensor.cat([maskChannel, maskedLatents, referenceLatents], dim: 1)
        let twice = try Tensor.cat([conditions, conditions], dim: 0)
        // Context rows: item 0 (unconditional) zeros, item 1 the audio; row b·F + f.
        let zeros = try audio.affine(scale: 0)
        let context = try Tensor.cat([zeros, audio], dim: 0)
        var current = try Tensor(Array((0..<4).flatMap { c in (0..<n).flatMap { _ in noise[(c * h * h)..<((c + 1) * h * h)] } }),
                                 shape: [1, 4, n, h, h], device: device)
        trace?.pointee.latents.append(current)
        let cache = deepCache.map { UNet3DConditionModel.DeepCache(interval: $0) }
        for (index, t) in scheduler.timesteps.enumerated() {
            let input = try Tensor.cat([Tensor.cat([current, current], dim: 0), twice], dim: 1)
            let prediction = try graphs.map { try $0(input, timestep: t, context: context, cache: cache, step: index) }
                ?? unet(input, timestep: t, context: context, cache: cache, step: index)
            if trace?.pointee.firstNoisePrediction == nil { trace?.pointee.firstNoisePrediction = prediction }
            let guided = try DDIMScheduler.guided(unconditional: prediction.narrowed(0, 0..<1), conditional: prediction.narrowed(0, 1..<2), scale: guidance)
            current = try scheduler.step(guided, at: t, sample: current).previous
            trace?.pointee.latents.append(current)
        }
        let final = try current.permuted([0, 2, 1, 3, 4]).reshaped([n, 4, h, h])
        let decoded = try Tensor.cat(Self.chunks(n, side: r).map { try vae.decode(final.narrowed(0, $0)) }, dim: 0)
        // Paste: m' = float32(1 − mask) keeps the generator's pixels where the mask is 0.
        let generated = try maskValues.affine(scale: -1, shift: 1).to(device, .float32)
        let kept = try generated.affine(scale: -1, shift: 1)
        return try decoded * generated + referenceImages * kept
    }

    /// The VAE's batches: frames in groups of at most ~1 M pixels (all 16 at 256, 4 at 512). The VAE
    /// treats every image alone, so this changes no value; it bounds the decoder's activations, which at
    /// 512 (256 channels at full resolution) would otherwise set the window's peak memory.
    static func chunks(_ n: Int, side: Int) -> [Range<Int>] {
        let size = max(1, (1 << 20) / (side * side))
        return stride(from: 0, to: n, by: size).map { $0..<min($0 + size, n) }
    }

    /// `trunc(clamp(x/2 + 0.5, 0, 1) · 255)` per value, HWC u8 frames from (F, 3, R, R) in [−1, 1];
    /// computed where the tensor is, so only bytes come back.
    public static func frames(_ pasted: Tensor) throws -> [[UInt8]] {
        let s = try pasted.shape
        let (n, r) = (s[0], s[2]), size = r * r * 3
        let bytes = try pasted.affine(scale: 0.5, shift: 0.5).clamped(0, 1).affine(scale: 255).to(pasted.device, .uint8).permuted([0, 2, 3, 1]).uint8s()
        return (0..<n).map { Array(bytes[($0 * size)..<(($0 + 1) * size)]) }
    }
}
