/// diffusers' `AutoencoderKL` with the `sd-vae-ft-mse` structure (4 down/up blocks, 2 resnets per
/// encoder block and 3 per decoder block, SiLU, GroupNorm 32 with eps 1e-6, one-head mid-block
/// attention, `quant_conv`/`post_quant_conv`), widths from `blockOutChannels`. LatentSync encodes
/// frames to latents × 0.18215 and decodes `latents / 0.18215`.
public struct AutoencoderKL: Sendable {
    public struct Config: Sendable, Equatable {
        public var blockOutChannels: [Int]
        public var latentChannels = 4
        public static let sdVAEftMSE = Config(blockOutChannels: [128, 256, 512, 512])
        public init(blockOutChannels: [Int], latentChannels: Int = 4) { self.blockOutChannels = blockOutChannels; self.latentChannels = latentChannels }
    }

    public static let scalingFactor = 0.18215

    public let config: Config
    public let dtype: DType
    /// Whether activations (and convolution weights) are laid out channels-last inside; inputs and
    /// results are contiguous either way.
    public let channelsLast: Bool
    let encoderIn: FrameConv, encoderBlocks: [VAEBlock], encoderMid: VAEMidBlock, encoderNormOut: GroupNorm, encoderOut: FrameConv, quantConv: FrameConv
    let postQuantConv: FrameConv, decoderIn: FrameConv, decoderMid: VAEMidBlock, decoderBlocks: [VAEBlock], decoderNormOut: GroupNorm, decoderOut: FrameConv

    /// - Parameter channelsLast: the activations' layout; nil: channels-last on CUDA (cuDNN's
    ///   convolutions read it without converting, GroupNorm + SiLU is the backend's one kernel),
    ///   contiguous on the CPU. Results agree either way.
    public init(_ w: WeightSource, config: Config = .sdVAEftMSE, channelsLast: Bool? = nil) throws {
        self.config = config
        dtype = w.dtype
        let layout = channelsLast ?? (w.device != .cpu)
        self.channelsLast = layout
        let widths = config.blockOutChannels, latent = config.latentChannels, last = widths.count - 1
        let encoder = WeightPath()("encoder"), decoder = WeightPath()("decoder")
        encoderIn = try FrameConv(w, encoder("conv_in"), in: 3, out: widths[0], kernel: 3, padding: 1, channelsLast: layout)
        var channels = widths[0]
        encoderBlocks = try widths.enumerated().map { i, out in
            defer { channels = out }
            return try VAEBlock(w, encoder("down_blocks")[i], in: channels, out: out, layers: 2, resample: i < last ? .down : nil, channelsLast: layout)
        }
        encoderMid = try VAEMidBlock(w, encoder("mid_block"), channels: widths[last], channelsLast: layout)
        encoderNormOut = try GroupNorm(w, encoder("conv_norm_out"), groups: 32, channels: widths[last], eps: 1e-6)
        encoderOut = try FrameConv(w, encoder("conv_out"), in: widths[last], out: 2 * latent, kernel: 3, padding: 1, channelsLast: layout)
        quantConv = try FrameConv(w, WeightPath()("quant_conv"), in: 2 * latent, out: 2 * latent, kernel: 1, channelsLast: layout)

        postQuantConv = try FrameConv(w, WeightPath()("post_quant_conv"), in: latent, out: latent, kernel: 1, channelsLast: layout)
        decoderIn = try FrameConv(w, decoder("conv_in"), in: latent, out: widths[last], kernel: 3, padding: 1, channelsLast: layout)
        decoderMid = try VAEMidBlock(w, decoder("mid_block"), channels: widths[last], channelsLast: layout)
        channels = widths[last]
        decoderBlocks = try widths.reversed().enumerated().map { i, out in
            defer { channels = out }
            return try VAEBlock(w, decoder("up_blocks")[i], in: channels, out: out, layers: 3, resample: i < last ? .up : nil, channelsLast: layout)
        }
        decoderNormOut = try GroupNorm(w, decoder("conv_norm_out"), groups: 32, channels: widths[0], eps: 1e-6)
        decoderOut = try FrameConv(w, decoder("conv_out"), in: widths[0], out: 3, kernel: 3, padding: 1, channelsLast: layout)
    }

    /// Loads diffusers weights strictly; checkpoints from older diffusers that name the mid-block
    /// attention `query`/`key`/`value`/`proj_attn` are renamed as diffusers does on load.
    public static func load(_ archive: any TensorArchive, config: Config = .sdVAEftMSE, device: Device = .cpu, dtype: DType = .float32,
                            channelsLast: Bool? = nil) throws -> (AutoencoderKL, StrictLoader.Report) {
        let renames = ["query": "to_q", "key": "to_k", "value": "to_v", "proj_attn": "to_out.0"]
        var source = archive
        if archive.names.contains(where: { $0.contains(".attentions.0.query.") }) {
            var tensors: [String: HostTensor] = [:]
            for name in archive.names {
                var parts = name.split(separator: ".").map(String.init)
                if parts.count >= 2, let renamed = renames[parts[parts.count - 2]], parts.contains("attentions") {
                    parts[parts.count - 2] = renamed
                }
                tensors[parts.joined(separator: ".")] = try archive.tensor(name)
            }
            source = TensorDictionary(tensors)
        }
        let loader = StrictLoader(source)
        let model = try AutoencoderKL(WeightSource(loader, device: device, dtype: dtype), config: config, channelsLast: channelsLast)
        return (model, try loader.finish())
    }

    /// (B, 3, H, W) images in [−1, 1] → the encoder's moments: mean and log-variance (clamped to [−30, 20]), (B, 4, H/8, W/8) each.
    public func encode(_ images: Tensor) throws -> (mean: Tensor, logVariance: Tensor) {
        let moments = try quantConv(encoderOutput(images)).contiguous(channelsLast: false)
        let latent = config.latentChannels
        let logVariance = try moments.narrowed(1, latent..<(2 * latent)).clamped(-30, 20)
        return (try moments.narrowed(1, 0..<latent), logVariance)
    }

    /// LatentSync's latents of images: the distribution's mean × 0.18215 (the reference samples; the
    /// mean makes results reproducible, and `sample(noise:)` is there for training).
    public func latents(_ images: Tensor) throws -> Tensor { try encode(images).mean.affine(scale: Self.scalingFactor) }

    /// (B, 4, h, w) scaled latents → (B, 3, 8h, 8w) images (≈ [−1, 1]); divides by 0.18215 first.
    public func decode(_ latents: Tensor) throws -> Tensor {
        var h = try decoderMid(decoderIn(postQuantConv(converted(latents).affine(scale: 1 / Self.scalingFactor))))
        for block in decoderBlocks { h = try block(h) }
        return try decoderOut(decoderNormOut(frames: h, 1, silu: true)).contiguous(channelsLast: false)
    }

    /// `x` in the model's element type and layout.
    func converted(_ x: Tensor) throws -> Tensor { try (x.dtype == dtype ? x : x.to(x.device, dtype)).contiguous(channelsLast: channelsLast) }

    /// Intermediate values the reference records (encoder output before `quant_conv`, decoder after `post_quant_conv` and after the mid block).
    public func encoderOutput(_ images: Tensor) throws -> Tensor {
        var h = try encoderIn(converted(images))
        for block in encoderBlocks { h = try block(h) }
        return try encoderOut(encoderNormOut(frames: encoderMid(h), 1, silu: true))
    }
}

/// `ResnetBlock2D` without time embedding: GN → SiLU → conv → GN → SiLU → conv + shortcut (1×1 when channels change).
struct VAEResnet: Module {
    let norm1: GroupNorm, conv1: FrameConv, norm2: GroupNorm, conv2: FrameConv, shortcut: FrameConv?

    init(_ w: WeightSource, _ path: WeightPath, in inChannels: Int, out: Int, channelsLast: Bool) throws {
        norm1 = try GroupNorm(w, path("norm1"), groups: 32, channels: inChannels, eps: 1e-6)
        conv1 = try FrameConv(w, path("conv1"), in: inChannels, out: out, kernel: 3, padding: 1, channelsLast: channelsLast)
        norm2 = try GroupNorm(w, path("norm2"), groups: 32, channels: out, eps: 1e-6)
        conv2 = try FrameConv(w, path("conv2"), in: out, out: out, kernel: 3, padding: 1, channelsLast: channelsLast)
        shortcut = inChannels == out ? nil : try FrameConv(w, path("conv_shortcut"), in: inChannels, out: out, kernel: 1, channelsLast: channelsLast)
    }

    func callAsFunction(_ x: Tensor) throws -> Tensor {
        let h = try conv2(norm2(frames: conv1(norm1(frames: x, 1, silu: true)), 1, silu: true))
        return try h + (shortcut.map { try $0(x) } ?? x)
    }
}

/// A `DownEncoderBlock2D` / `UpDecoderBlock2D`: resnets, then the resampler.
struct VAEBlock: Module {
    enum Resample { case down, up }
    let resnets: [VAEResnet]
    let resample: Resample?
    let resampleConv: FrameConv?
    let channelsLast: Bool

    init(_ w: WeightSource, _ path: WeightPath, in inChannels: Int, out: Int, layers: Int, resample: Resample?, channelsLast: Bool) throws {
        resnets = try (0..<layers).map { try VAEResnet(w, path("resnets")[$0], in: $0 == 0 ? inChannels : out, out: out, channelsLast: channelsLast) }
        self.resample = resample
        self.channelsLast = channelsLast
        switch resample {
        // Downsampling pads one zero row at the bottom and one column at the right, then a stride-2 conv without padding.
        case .down: resampleConv = try FrameConv(w, path("downsamplers")[0]("conv"), in: out, out: out, kernel: 3, stride: 2, channelsLast: channelsLast)
        case .up: resampleConv = try FrameConv(w, path("upsamplers")[0]("conv"), in: out, out: out, kernel: 3, padding: 1, channelsLast: channelsLast)
        case nil: resampleConv = nil
        }
    }

    func callAsFunction(_ x: Tensor) throws -> Tensor {
        let h = try resnets.reduce(x) { try $1($0) }
        switch resample {
        case .down: return try resampleConv!(Functional.pad(h, [0, 1, 0, 1]).contiguous(channelsLast: channelsLast))
        case .up: return try resampleConv!(Functional.upsampleNearest(h, factors: [2, 2]))
        case nil: return h
        }
    }
}

/// `UNetMidBlock2D`: resnet → one-head self-attention (GN, biased q/k/v/out, residual) → resnet.
struct VAEMidBlock: Module {
    let resnet0: VAEResnet, norm: GroupNorm, attention: MultiHeadAttention, resnet1: VAEResnet
    let channelsLast: Bool

    init(_ w: WeightSource, _ path: WeightPath, channels: Int, channelsLast: Bool) throws {
        resnet0 = try VAEResnet(w, path("resnets")[0], in: channels, out: channels, channelsLast: channelsLast)
        let attention = path("attentions")[0]
        norm = try GroupNorm(w, attention("group_norm"), groups: 32, channels: channels, eps: 1e-6)
        self.attention = try MultiHeadAttention(w, attention, channels: channels, heads: 1, qkvBias: true)
        resnet1 = try VAEResnet(w, path("resnets")[1], in: channels, out: channels, channelsLast: channelsLast)
        self.channelsLast = channelsLast
    }

    func callAsFunction(_ x: Tensor) throws -> Tensor {
        let h = try resnet0(x)
        // Tokens (B, H·W, C): a view of channels-last activations.
        let attended = try attention(norm(frames: h, 1).tokens()).image(like: h).contiguous(channelsLast: channelsLast)
        return try resnet1(attended + h)
    }
}
