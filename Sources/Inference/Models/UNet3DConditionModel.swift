#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#endif

/// LatentSync's `UNet3DConditionModel` (`latentsync/models/unet.py`, `configs/unet/stage2.yaml`): a
/// Stable-Diffusion-style U-Net over (B, C, F, H, W) latents with AnimateDiff motion modules. Spatial
/// layers run per frame; resnet GroupNorms pool over all frames of the window; each frame
/// cross-attends to its own 50 Whisper tokens; motion modules attend over the frames at each position.
///
/// Inside, the hidden state is one (B·F, C, H, W) tensor of frames — where the reference moves between
/// (B, C, F, H, W) and per-frame views around every layer (a copy each way) — and on CUDA it is kept
/// channels-last: cuDNN's convolutions read it without converting, and the transformers' tokens
/// (B·F, H·W, C) are a view of it.
public struct UNet3DConditionModel: Sendable {
    public struct Config: Sendable, Equatable {
        public var blockOutChannels: [Int]
        public var inChannels = 13, outChannels = 4, layersPerBlock = 2, crossAttentionDim = 384, heads = 8
        /// Down blocks with spatial transformers (CrossAttnDownBlock3D); up blocks mirror them.
        public var crossAttentionDown = [true, true, true, false]
        /// Motion modules at every down/up block (AnimateDiff resolutions [1, 2, 4, 8]); none in the mid block.
        public var motionModules = true
        public var motionMaxLength = 24

        /// `configs/unet/stage2.yaml` (1,267,099,844 parameters).
        public static let stage2 = Config(blockOutChannels: [320, 640, 1280, 1280])
        public init(blockOutChannels: [Int]) { self.blockOutChannels = blockOutChannels }
    }

    public let config: Config
    /// The weights' element type; inputs are converted to it.
    public let dtype: DType
    /// Whether activations (and convolution weights) are laid out channels-last.
    public let channelsLast: Bool
    let timeLinear1: Linear, timeLinear2: Linear
    let convIn: FrameConv
    let downBlocks: [UNetBlock]
    let mid: (ResnetBlock3D, SpatialTransformer3D, ResnetBlock3D)
    let upBlocks: [UNetBlock]
    let normOut: GroupNorm, convOut: FrameConv

    /// - Parameter channelsLast: the activations' layout; nil: channels-last on CUDA (where cuDNN's fast
    ///   convolutions want it), contiguous on the CPU. Results agree either way.
    public init(_ w: WeightSource, config c: Config = .stage2, channelsLast: Bool? = nil) throws {
        config = c
        dtype = w.dtype
        let layout = channelsLast ?? (w.device != .cpu)
        self.channelsLast = layout
        let root = WeightPath(), widths = c.blockOutChannels, timeWidth = 4 * widths[0]
        timeLinear1 = try Linear(w, root("time_embedding")("linear_1"), in: widths[0], out: timeWidth)
        timeLinear2 = try Linear(w, root("time_embedding")("linear_2"), in: timeWidth, out: timeWidth)
        convIn = try FrameConv(w, root("conv_in"), in: c.inChannels, out: widths[0], kernel: 3, padding: 1, channelsLast: layout)
        let parts = UNetParts(w: w, config: c, timeWidth: timeWidth, channelsLast: layout)
        var skips = [widths[0]], channels = widths[0]
        downBlocks = try widths.enumerated().map { i, out in
            let path = root("down_blocks")[i]
            var layers: [UNetLayer] = []
            for j in 0..<c.layersPerBlock {
                layers.append(try parts.layer(path, j, in: channels, out: out, transformer: c.crossAttentionDown[i]))
                channels = out
                skips.append(out)
            }
            let last = i == widths.count - 1
            if !last { skips.append(out) }
            return UNetBlock(layers: layers, resample: last ? nil : try FrameConv(w, path("downsamplers")[0]("conv"), in: out, out: out, kernel: 3, stride: 2,
                                                                                  padding: 1, channelsLast: layout),
                             upsample: false)
        }
        let midPath = root("mid_block"), top = widths.last!
        mid = (try parts.resnet(midPath("resnets")[0], in: top, out: top), try parts.transformer(midPath("attentions")[0], channels: top),
               try parts.resnet(midPath("resnets")[1], in: top, out: top))
        upBlocks = try widths.reversed().enumerated().map { i, out in
            let path = root("up_blocks")[i]
            var layers: [UNetLayer] = []
            for j in 0...c.layersPerBlock {
                let skip = skips.removeLast()
                layers.append(try parts.layer(path, j, in: channels + skip, out: out, transformer: c.crossAttentionDown[widths.count - 1 - i]))
                channels = out
            }
            let last = i == widths.count - 1
            return UNetBlock(layers: layers, resample: last ? nil : try FrameConv(w, path("upsamplers")[0]("conv"), in: out, out: out, kernel: 3, padding: 1,
                                                                                  channelsLast: layout),
                             upsample: true)
        }
        normOut = try GroupNorm(w, root("conv_norm_out"), groups: 32, channels: widths[0], eps: 1e-5)
        convOut = try FrameConv(w, root("conv_out"), in: widths[0], out: c.outChannels, kernel: 3, padding: 1, channelsLast: layout)
    }

    /// Parameters of a configuration (counted without allocating them).
    public static func parametersCount(_ config: Config = .stage2) throws -> Int {
        let recorder = ShapeRecorder()
        _ = try UNet3DConditionModel(WeightSource(.shapes(recorder)), config: config)
        return recorder.parameters
    }

    public static func load(_ archive: any TensorArchive, config: Config = .stage2, device: Device = .cpu, dtype: DType = .float32,
                            channelsLast: Bool? = nil) throws -> (UNet3DConditionModel, StrictLoader.Report) {
        let loader = StrictLoader(archive)
        let model = try UNet3DConditionModel(WeightSource(loader, device: device, dtype: dtype), config: config, channelsLast: channelsLast)
        return (model, try loader.finish())
    }

    /// The sinusoidal timestep features (flip_sin_to_cos, shift 0): [cos(t·f_k), sin(t·f_k)], f_k = exp(−ln(10000)·k/half), float32.
    public static func timestepFeatures(_ timesteps: [Int], width: Int) -> [Float] {
        let half = width / 2
        return timesteps.flatMap { t -> [Float] in
            let angles = (0..<half).map { k in Float(t) * exp(-Float(log(10000.0)) * Float(k) / Float(half)) }
            return angles.map { cos($0) } + angles.map { sin($0) }
        }
    }

    /// Block outputs for activation checks, keyed like the reference's `act.*` names.
    public typealias Activations = [String: Tensor]

    /// DeepCache (LatentSync's `DeepCacheSDHelper`, cache_interval 3, branch 0): the whole U-Net runs
    /// on every `interval`-th step of a window; in between only `conv_in`, the last layer of the final
    /// up block, `conv_norm_out` and `conv_out` run, on the hidden state cached at the last full step.
    /// (Upstream also re-runs the final block's first two motion modules on cached inputs; their
    /// outputs cannot change, so the state after them is cached instead.) An approximation: the
    /// reference's scripts and app use it by default. One cache per window; `reset()` between windows.
    public final class DeepCache: @unchecked Sendable {
        // @unchecked: used by one window's denoising loop at a time.
        public let interval: Int
        var hidden: Tensor?
        public internal(set) var fullSteps = 0, cachedSteps = 0
        public init(interval: Int = 3) { precondition(interval >= 1); self.interval = interval }
        public func reset() { hidden = nil }
    }

    /// ε prediction for `sample` (B, 13, F, H, W) at `timestep`, with `context` (B·F, 50, 384) — row
    /// b·F + f is frame f of item b.
    public func callAsFunction(_ sample: Tensor, timestep: Int, context: Tensor, cache: DeepCache? = nil, step index: Int = 0,
                               record: ((String, Tensor) -> Void)? = nil) throws -> Tensor {
        try forward(sample, features: timestepFeatures(timestep, batch: sample.shape[0], device: sample.device, backend: sample.backend),
                    context: context, cache: cache, step: index, record: record)
    }

    /// `timestepFeatures` of one timestep for `batch` items, (batch, C₀) float32 on `device`.
    func timestepFeatures(_ timestep: Int, batch: Int, device: Device, backend: TorchBackend) throws -> Tensor {
        try Tensor(Self.timestepFeatures(Array(repeating: timestep, count: batch), width: config.blockOutChannels[0]),
                   shape: [batch, config.blockOutChannels[0]], device: device, backend: backend)
    }

    /// Whether a forward at `index` with `cache` takes DeepCache's short path (the cached state exists
    /// and the step is not a multiple of the interval).
    func takesCachedPath(_ cache: DeepCache?, step index: Int) -> Bool {
        guard let cache else { return false }
        return cache.hidden != nil && index % cache.interval != 0
    }

    /// The forward from the timestep's features (already on the device: no host copy inside, which
    /// is what lets a CUDA graph record it).
    func forward(_ sample: Tensor, features timeFeatures: Tensor, context: Tensor, cache: DeepCache?, step index: Int,
                 record: ((String, Tensor) -> Void)?) throws -> Tensor {
        let device = sample.device
        let sample = try sample.dtype == dtype ? sample : sample.to(device, dtype)
        let context = try context.dtype == dtype ? context : context.to(device, dtype)
        let frames = try sample.shape[2]
        let features = try timeFeatures.dtype == dtype ? timeFeatures : timeFeatures.to(device, dtype)
        record?("act.time_proj", features)
        let emb = try timeLinear2(timeLinear1(features).activation(.silu))
        record?("act.time_embedding", emb)
        // One timestep for the whole batch: every frame's embedding is the first row's.
        let step = UNetStep(embedding: try emb.narrowed(0, 0..<1).activation(.silu), context: context, frames: frames)
        // (B, C, F, H, W) → frames (B·F, C, H, W) in the model's layout, and back for the caller and the records.
        let input = try sample.framesAsBatch().contiguous(channelsLast: channelsLast)
        func items(_ t: Tensor) throws -> Tensor { try t.batchAsFrames(frames) }
        func output(_ h: Tensor) throws -> Tensor {
            try items(convOut(normOut(frames: h, frames, silu: true))).contiguous(channelsLast: false)
        }
        let finalLayer = upBlocks.last!.layers.last!
        if takesCachedPath(cache, step: index), let cache, let hidden = cache.hidden {
            cache.cachedSteps += 1
            return try output(finalLayer(Tensor.cat([hidden, convIn(input)], dim: 1), step))
        }
        cache?.fullSteps += 1
        var h = try convIn(input)
        var skips = [h]
        for (i, block) in downBlocks.enumerated() {
            for layer in block.layers {
                h = try layer(h, step, record: i == 2 && layer === block.layers.first && record != nil ? { try record?("act.down_blocks.2.\($0)", items($1)) } : nil)
                skips.append(h)
            }
            if let conv = block.resample { h = try conv(h); skips.append(h) }
            if let record { record("act.down_blocks.\(i)", try items(h)) }
        }
        h = try mid.2(mid.1(mid.0(h, step), step), step)
        if let record { record("act.mid_block", try items(h)) }
        for (i, block) in upBlocks.enumerated() {
            for layer in block.layers {
                if layer === finalLayer { cache?.hidden = h }
                h = try layer(Tensor.cat([h, skips.removeLast()], dim: 1), step)
            }
            if let conv = block.resample { h = try conv(Functional.upsampleNearest(h, factors: [2, 2])) }
            if let record { record("act.up_blocks.\(i)", try items(h)) }
        }
        return try output(h)
    }
}

/// What every layer of one forward shares: SiLU(time embedding) (1 row: the timestep is the whole
/// batch's), the audio context (B·F, 50, 384) and the frame count F.
struct UNetStep {
    let embedding: Tensor, context: Tensor, frames: Int
}

struct UNetBlock: Sendable {
    let layers: [UNetLayer]
    let resample: FrameConv?
    let upsample: Bool
}

/// resnet → spatial transformer (in cross-attention blocks) → motion module.
final class UNetLayer: Sendable {
    let resnet: ResnetBlock3D, transformer: SpatialTransformer3D?, motion: MotionModule?

    init(resnet: ResnetBlock3D, transformer: SpatialTransformer3D?, motion: MotionModule?) {
        self.resnet = resnet; self.transformer = transformer; self.motion = motion
    }

    func callAsFunction(_ x: Tensor, _ step: UNetStep, record: ((String, Tensor) throws -> Void)? = nil) throws -> Tensor {
        var h = try resnet(x, step)
        try record?("resnets.0", h)
        if let transformer { h = try transformer(h, step); try record?("attentions.0", h) }
        if let motion { h = try motion(h, step); try record?("motion_modules.0", h) }
        return h
    }
}

/// Builds the layers with their checkpoint names.
struct UNetParts {
    let w: WeightSource, config: UNet3DConditionModel.Config, timeWidth: Int, channelsLast: Bool

    func layer(_ block: WeightPath, _ j: Int, in inChannels: Int, out: Int, transformer: Bool) throws -> UNetLayer {
        UNetLayer(resnet: try resnet(block("resnets")[j], in: inChannels, out: out),
                  transformer: transformer ? try self.transformer(block("attentions")[j], channels: out) : nil,
                  motion: config.motionModules ? try MotionModule(w, block("motion_modules")[j]("temporal_transformer"), channels: out,
                                                                   heads: config.heads, maxLength: config.motionMaxLength) : nil)
    }

    func resnet(_ path: WeightPath, in inChannels: Int, out: Int) throws -> ResnetBlock3D {
        try ResnetBlock3D(w, path, in: inChannels, out: out, timeWidth: timeWidth, channelsLast: channelsLast)
    }

    func transformer(_ path: WeightPath, channels: Int) throws -> SpatialTransformer3D {
        try SpatialTransformer3D(w, path, channels: channels, contextChannels: config.crossAttentionDim, heads: config.heads)
    }
}

/// `ResnetBlock3D`: GN (pooled over frames) → SiLU → conv → + time projection → GN → SiLU → conv, + shortcut.
struct ResnetBlock3D: Sendable {
    let norm1: GroupNorm, conv1: FrameConv, timeProjection: Linear, norm2: GroupNorm, conv2: FrameConv, shortcut: FrameConv?

    init(_ w: WeightSource, _ path: WeightPath, in inChannels: Int, out: Int, timeWidth: Int, channelsLast: Bool) throws {
        norm1 = try GroupNorm(w, path("norm1"), groups: 32, channels: inChannels, eps: 1e-5)
        conv1 = try FrameConv(w, path("conv1"), in: inChannels, out: out, kernel: 3, padding: 1, channelsLast: channelsLast)
        timeProjection = try Linear(w, path("time_emb_proj"), in: timeWidth, out: out)
        norm2 = try GroupNorm(w, path("norm2"), groups: 32, channels: out, eps: 1e-5)
        conv2 = try FrameConv(w, path("conv2"), in: out, out: out, kernel: 3, padding: 1, channelsLast: channelsLast)
        shortcut = inChannels == out ? nil : try FrameConv(w, path("conv_shortcut"), in: inChannels, out: out, kernel: 1, channelsLast: channelsLast)
    }

    /// `x`: (B·F, C, H, W) frames.
    func callAsFunction(_ x: Tensor, _ step: UNetStep) throws -> Tensor {
        // The time projection is one per-channel shift for every frame: added to conv1's bias instead of
        // to its output (a broadcast pass over the activations saved).
        let shift = try timeProjection(step.embedding).reshaped([-1])
        var h = try conv1(norm1(frames: x, step.frames, silu: true), biasShift: shift)
        h = try conv2(norm2(frames: h, step.frames, silu: true))
        return try h + (shortcut.map { try $0(x) } ?? x)
    }
}

extension Tensor {
    /// (B, C, F, H, W) → (B·F, C, H, W).
    func framesAsBatch() throws -> Tensor {
        let s = try shape
        return try permuted([0, 2, 1, 3, 4]).reshaped([s[0] * s[2], s[1], s[3], s[4]])
    }

    /// (B·F, C, H, W) → (B, C, F, H, W) (a view).
    func batchAsFrames(_ frames: Int) throws -> Tensor {
        let s = try shape
        return try reshaped([s[0] / frames, frames, s[1], s[2], s[3]]).permuted([0, 2, 1, 3, 4])
    }

    /// (N, C, H, W) → (N, H·W, C) tokens: a view of channels-last memory, a copy otherwise.
    func tokens() throws -> Tensor {
        let s = try shape
        return try permuted([0, 2, 3, 1]).reshaped([s[0], s[2] * s[3], s[1]])
    }

    /// (N, H·W, C) tokens → (N, C, H, W) in the layout of `like` (a view for channels-last).
    func image(like: Tensor) throws -> Tensor {
        let s = try like.shape
        return try reshaped([s[0], s[2], s[3], s[1]]).permuted([0, 3, 1, 2])
    }
}

/// `Transformer3DModel` (spatial, per frame): GN → 1×1 `proj_in` → tokens → self-attention,
/// cross-attention to the frame's audio tokens, GEGLU feed-forward → `proj_out` → + input. The 1×1
/// convolutions are applied to the tokens as the linear maps they are.
struct SpatialTransformer3D: Sendable {
    let norm: GroupNorm, projectIn: PointwiseConv, projectOut: PointwiseConv
    let norm1: LayerNorm, attn1: MultiHeadAttention, norm2: LayerNorm, attn2: MultiHeadAttention, norm3: LayerNorm, ff: GEGLUFeedForward

    init(_ w: WeightSource, _ path: WeightPath, channels c: Int, contextChannels: Int, heads: Int) throws {
        norm = try GroupNorm(w, path("norm"), groups: 32, channels: c, eps: 1e-6)
        projectIn = try PointwiseConv(w, path("proj_in"), channels: c)
        let block = path("transformer_blocks")[0]
        norm1 = try LayerNorm(w, block("norm1"), features: c)
        attn1 = try MultiHeadAttention(w, block("attn1"), channels: c, heads: heads, qkvBias: false)
        norm2 = try LayerNorm(w, block("norm2"), features: c)
        attn2 = try MultiHeadAttention(w, block("attn2"), channels: c, contextChannels: contextChannels, heads: heads, qkvBias: false)
        norm3 = try LayerNorm(w, block("norm3"), features: c)
        ff = try GEGLUFeedForward(w, block("ff"), channels: c)
        projectOut = try PointwiseConv(w, path("proj_out"), channels: c)
    }

    /// `x`: (B·F, C, H, W) frames.
    func callAsFunction(_ x: Tensor, _ step: UNetStep) throws -> Tensor {
        var t = try projectIn(norm(frames: x, 1).tokens())
        t = try t + attn1(norm1(t))
        t = try t + attn2(norm2(t), context: step.context)
        t = try t + ff(norm3(t))
        return try projectOut(t).image(like: x) + x
    }
}

/// AnimateDiff's `VanillaTemporalModule` (`temporal_transformer`): per-frame GN → Linear `proj_in` →
/// two temporal self-attentions (LayerNorm, + positional table on the attention input only) over the
/// frames at each position → GEGLU feed-forward → Linear `proj_out` → + input.
struct MotionModule: Sendable {
    let norm: GroupNorm, projectIn: Linear, projectOut: Linear
    let norms: [LayerNorm], attentions: [MultiHeadAttention], positions: [Tensor]
    let ffNorm: LayerNorm, ff: GEGLUFeedForward

    init(_ w: WeightSource, _ path: WeightPath, channels c: Int, heads: Int, maxLength: Int) throws {
        norm = try GroupNorm(w, path("norm"), groups: 32, channels: c, eps: 1e-6)
        projectIn = try Linear(w, path("proj_in"), in: c, out: c)
        let block = path("transformer_blocks")[0]
        norms = try (0..<2).map { try LayerNorm(w, block("norms")[$0], features: c) }
        attentions = try (0..<2).map { try MultiHeadAttention(w, block("attention_blocks")[$0], channels: c, heads: heads, qkvBias: false) }
        positions = try (0..<2).map { try w.tensor(block("attention_blocks")[$0]("pos_encoder")("pe"), shape: [1, maxLength, c], role: .buffer) }
        ffNorm = try LayerNorm(w, block("ff_norm"), features: c)
        ff = try GEGLUFeedForward(w, block("ff"), channels: c)
        projectOut = try Linear(w, path("proj_out"), in: c, out: c)
    }

    /// The table AnimateDiff stores as `pos_encoder.pe`: pe[p, 2k] = sin(p·e_k), pe[p, 2k+1] = cos(p·e_k), e_k = exp(−2k·ln(10000)/C).
    static func positionTable(length: Int, channels: Int) -> [Float] {
        var table = [Float](repeating: 0, count: length * channels)
        for p in 0..<length {
            for k in 0..<(channels / 2) {
                let angle = Double(p) * exp(-Double(2 * k) * log(10000.0) / Double(channels))
                table[p * channels + 2 * k] = Float(sin(angle)); table[p * channels + 2 * k + 1] = Float(cos(angle))
            }
        }
        return table
    }

    /// `x`: (B·F, C, H, W) frames.
    func callAsFunction(_ x: Tensor, _ step: UNetStep) throws -> Tensor {
        let s = try x.shape
        let (n, c, hw, frames) = (s[0], s[1], s[2] * s[3], step.frames)
        let b = n / frames
        var t = try projectIn(norm(frames: x, 1).tokens())  // (B·F, HW, C)
        for a in 0..<2 {
            // Attention over the frames at each position of each item; the positional table is added
            // per frame to the normalised tokens (B, F, HW, C) (one pass with the norm on CUDA).
            let input = try norms[a](t.reshaped([b, frames, hw, c]), addingPerFrame: positions[a].narrowed(1, 0..<frames))
            t = try t + attentions[a].alongSecondDimension(input).reshaped([n, hw, c])
        }
        t = try t + ff(ffNorm(t))
        return try projectOut(t).image(like: x) + x
    }
}

/// A 1×1 convolution's `[C, C, 1, 1]` weight applied to (N, L, C) tokens as a linear map.
struct PointwiseConv: Sendable {
    let weight: Tensor, bias: Tensor

    init(_ w: WeightSource, _ path: WeightPath, channels c: Int) throws {
        let conv = try Conv(w, path, in: c, out: c, kernel: [1, 1])
        weight = w.isShapesOnly ? conv.weight : try conv.weight.reshaped([c, c])
        bias = conv.bias!
    }

    func callAsFunction(_ x: Tensor) throws -> Tensor { try Functional.linear(x, weight: weight, bias: bias) }
}
