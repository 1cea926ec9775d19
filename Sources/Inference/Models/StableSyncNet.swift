#if canImport(FoundationEssentials)
import FoundationEssentials  // Data, URL, JSON coding: keeps binaries that link Inference small (no ICU)
#else
import Foundation
#endif

/// StableSyncNet — LatentSync's `latentsync/models/stable_syncnet.py`: two `DownEncoder2D` towers
/// (visual: 16 RGB frames stacked on channels, lower half of the aligned face; audio: the 80×52 mel
/// window), each ending in GroupNorm + ReLU at D×1×1, L2-normalised; the cosine of the two
/// embeddings is the sync probability fed to BCE. Built from a configuration (the reference YAML's
/// fields), so the shipped `syncnet_16_pixel_attn` and smaller trainable variants share one code.
public struct StableSyncNet: Sendable {
    public struct Config: Sendable, Equatable, Codable {
        public var audio: Tower
        public var visual: Tower
        /// The aligned-face size whose lower half the visual tower sees (`resolution` in the reference's
        /// data config); nil means 256, the released model's.
        public var resolution: Int?

        public var inputResolution: Int { resolution ?? 256 }

        public struct Tower: Sendable, Equatable, Codable {
            public var inChannels: Int
            public var blockOutChannels: [Int]
            /// Per stage: stride of the downsampling convolution, (height, width); (1, 1) = none.
            public var downsampleFactors: [Factor]
            /// Per stage: an attention block after the stage's resnet.
            public var attentionBlocks: [Bool]

            public init(inChannels: Int, blockOutChannels: [Int], downsampleFactors: [Factor], attentionBlocks: [Bool]) {
                precondition(blockOutChannels.count == downsampleFactors.count && blockOutChannels.count == attentionBlocks.count,
                             "one downsample factor and one attention flag per stage")
                self.inChannels = inChannels; self.blockOutChannels = blockOutChannels
                self.downsampleFactors = downsampleFactors; self.attentionBlocks = attentionBlocks
            }
        }

        /// A stage's downsampling: one stride for both dimensions (the YAML's scalar) or (height, width).
        public enum Factor: Sendable, Equatable, Codable {
            case both(Int)
            case pair(Int, Int)

            var strides: (Int, Int) {
                switch self {
                case let .both(s): (s, s)
                case let .pair(h, w): (h, w)
                }
            }

            /// The zero padding before the strided 3×3 convolution, as F.pad's (left, right, top, bottom):
            /// the reference pads a height-1 stride on both rows, a width-1 stride on both columns, and
            /// otherwise one zero row/column after the end only.
            var padding: [Int] {
                switch self {
                case .both: [0, 1, 0, 1]
                case let .pair(1, _): [0, 1, 1, 1]
                case let .pair(_, 1): [1, 1, 0, 1]
                case .pair: [0, 1, 0, 1]
                }
            }

            var isIdentity: Bool { strides == (1, 1) }

            // As in the reference YAML: a number, or a [height, width] pair.
            public init(from decoder: any Decoder) throws {
                let c = try decoder.singleValueContainer()
                if let s = try? c.decode(Int.self) { self = .both(s); return }
                let pair = try c.decode([Int].self)
                guard pair.count == 2 else { throw DecodingError.dataCorruptedError(in: c, debugDescription: "a downsample factor is a number or [height, width]") }
                self = .pair(pair[0], pair[1])
            }

            public func encode(to encoder: any Encoder) throws {
                var c = encoder.singleValueContainer()
                switch self {
                case let .both(s): try c.encode(s)
                case let .pair(h, w): try c.encode([h, w])
                }
            }
        }

        /// The metadata key under which checkpoints written by `pipelined train syncnet` carry their configuration (JSON).
        public static let metadataKey = "stable_syncnet_config"

        /// The configuration a checkpoint declares in its metadata, else the shipped one (`stable_syncnet.pt` has none).
        public static func of(_ archive: any TensorArchive) throws -> Config {
            guard let safetensors = archive as? SafeTensors, let json = safetensors.metadata[metadataKey] else { return .syncnet16PixelAttention }
            do { return try JSONDecoder().decode(Config.self, from: Data(json.utf8)) } catch {
                throw WeightError.malformed("the checkpoint's \(metadataKey) metadata is not a StableSyncNet configuration: \(error)")
            }
        }

        public func json() throws -> String { String(decoding: try JSONEncoder().encode(self), as: UTF8.self) }

        public init(audio: Tower, visual: Tower, resolution: Int? = nil) { self.audio = audio; self.visual = visual; self.resolution = resolution }

        /// `configs/syncnet/syncnet_16_pixel_attn.yaml`, the configuration of the released `stable_syncnet.pt`.
        public static let syncnet16PixelAttention = Config(
            audio: Tower(inChannels: 1, blockOutChannels: [32, 64, 128, 256, 512, 1024, 2048],
                         downsampleFactors: [.pair(2, 1), .both(2), .both(2), .both(1), .both(2), .both(2), .pair(2, 3)],
                         attentionBlocks: [false, false, false, true, true, false, false]),
            visual: Tower(inChannels: 48, blockOutChannels: [64, 128, 256, 256, 512, 1024, 2048, 2048],
                          downsampleFactors: [.pair(1, 2), .both(2), .both(2), .both(2), .both(2), .both(2), .both(2), .both(2)],
                          attentionBlocks: [false, false, false, false, true, true, false, false]))
    }

    public let config: Config
    public let audioEncoder: DownEncoder2D, visualEncoder: DownEncoder2D

    public init(_ w: WeightSource, config: Config = .syncnet16PixelAttention) throws {
        self.config = config
        audioEncoder = try DownEncoder2D(w, WeightPath()("audio_encoder"), config.audio)
        visualEncoder = try DownEncoder2D(w, WeightPath()("visual_encoder"), config.visual)
    }

    /// Loads a checkpoint strictly: every key the configuration declares, nothing else.
    public static func load(_ archive: any TensorArchive, config: Config = .syncnet16PixelAttention, device: Device = .cpu) throws -> (StableSyncNet, StrictLoader.Report) {
        let loader = StrictLoader(archive)
        let model = try StableSyncNet(WeightSource(loader, device: device), config: config)
        return (model, try loader.finish())
    }

    /// The state dict a configuration declares (names, shapes) and its parameter count, without weights.
    public static func parameters(of config: Config) throws -> ShapeRecorder {
        let recorder = ShapeRecorder()
        _ = try StableSyncNet(WeightSource(.shapes(recorder)), config: config)
        return recorder
    }

    /// (B, 48, H, W) frames in [−1, 1] → (B, D) unit embeddings.
    public func visualEmbedding(_ frames: Tensor) throws -> Tensor { try Functional.normalize(visualEncoder(frames).flattenedItems(), dim: 1) }

    /// (B, 1, 80, 52) mel windows → (B, D) unit embeddings.
    public func audioEmbedding(_ mel: Tensor) throws -> Tensor { try Functional.normalize(audioEncoder(mel).flattenedItems(), dim: 1) }

    /// Cosine similarity of unit embeddings (B, D) × (B, D) → (B); in [0, 1] since both are non-negative.
    public static func cosine(_ a: Tensor, _ b: Tensor) throws -> Tensor { try (a * b).sum([1]) }
}

/// One tower: `conv_in`, per stage a resnet (then its downsampling) and optionally an attention
/// block, then `norm_out` + ReLU. `down_blocks` indices count attention blocks as modules, as the
/// reference's `nn.ModuleList` does.
public struct DownEncoder2D: Module {
    public let convIn: Conv
    public let blocks: [any Module]
    public let normOut: GroupNorm

    public init(_ w: WeightSource, _ path: WeightPath, _ tower: StableSyncNet.Config.Tower) throws {
        convIn = try Conv(w, path("conv_in"), in: tower.inChannels, out: tower.blockOutChannels[0], kernel: [3, 3], padding: [1, 1])
        var blocks: [any Module] = []
        var channels = tower.blockOutChannels[0]
        for (stage, out) in tower.blockOutChannels.enumerated() {
            blocks.append(try DownResnetBlock2D(w, path("down_blocks")[blocks.count], in: channels, out: out,
                                                factor: tower.downsampleFactors[stage]))
            if tower.attentionBlocks[stage] { blocks.append(try AttentionBlock2D(w, path("down_blocks")[blocks.count], channels: out)) }
            channels = out
        }
        self.blocks = blocks
        normOut = try GroupNorm(w, path("norm_out"), groups: 32, channels: channels, eps: 1e-6)
    }

    public func callAsFunction(_ x: Tensor) throws -> Tensor { try normOut(blocks.reduce(convIn(x)) { try $1($0) }).relu() }

    /// The output of each `down_blocks` module (for activation checks).
    public func activations(_ x: Tensor) throws -> [Tensor] {
        var current = try convIn(x), out: [Tensor] = []
        for block in blocks { current = try block(current); out.append(current) }
        return out
    }
}

/// StableSyncNet's `ResnetBlock2D`: GN → SiLU → conv → GN → SiLU → conv, plus the shortcut (1×1 when
/// channels change), **then** the padded strided 3×3 `downsample_conv` if the stage downsamples.
struct DownResnetBlock2D: Module {
    let norm1: GroupNorm, conv1: Conv, norm2: GroupNorm, conv2: Conv
    let shortcut: Conv?
    let downsample: Conv?
    let downsamplePadding: [Int]

    init(_ w: WeightSource, _ path: WeightPath, in inChannels: Int, out: Int, factor: StableSyncNet.Config.Factor) throws {
        norm1 = try GroupNorm(w, path("norm1"), groups: 32, channels: inChannels, eps: 1e-6)
        conv1 = try Conv(w, path("conv1"), in: inChannels, out: out, kernel: [3, 3], padding: [1, 1])
        norm2 = try GroupNorm(w, path("norm2"), groups: 32, channels: out, eps: 1e-6)
        conv2 = try Conv(w, path("conv2"), in: out, out: out, kernel: [3, 3], padding: [1, 1])
        shortcut = inChannels == out ? nil : try Conv(w, path("conv_shortcut"), in: inChannels, out: out, kernel: [1, 1])
        let (sh, sw) = factor.strides
        downsample = factor.isIdentity ? nil : try Conv(w, path("downsample_conv"), in: out, out: out, kernel: [3, 3], stride: [sh, sw])
        downsamplePadding = factor.padding
    }

    func callAsFunction(_ x: Tensor) throws -> Tensor {
        let h = try conv2(norm2(conv1(norm1(x).activation(.silu))).activation(.silu))
        let sum = try h + (shortcut.map { try $0(x) } ?? x)
        guard let downsample else { return sum }
        return try downsample(Functional.pad(sum, downsamplePadding))
    }
}

/// StableSyncNet's `AttentionBlock2D(C)`: GN → 1×1 `conv_in` → tokens → `t + Attn(LN(t))` (8 heads,
/// biased projections) → `t + FF(LN(t))` (GEGLU) → map → 1×1 `conv_out` → + input.
struct AttentionBlock2D: Module {
    let norm1: GroupNorm, convIn: Conv, norm2: LayerNorm, attention: MultiHeadAttention, norm3: LayerNorm
    let feedForward: GEGLUFeedForward, convOut: Conv

    init(_ w: WeightSource, _ path: WeightPath, channels c: Int) throws {
        norm1 = try GroupNorm(w, path("norm1"), groups: 32, channels: c, eps: 1e-6)
        convIn = try Conv(w, path("conv_in"), in: c, out: c, kernel: [1, 1])
        norm2 = try LayerNorm(w, path("norm2"), features: c)
        attention = try MultiHeadAttention(w, path("attn"), channels: c, heads: 8, qkvBias: true)
        norm3 = try LayerNorm(w, path("norm3"), features: c)
        feedForward = try GEGLUFeedForward(w, path("ff"), channels: c)
        convOut = try Conv(w, path("conv_out"), in: c, out: c, kernel: [1, 1])
    }

    func callAsFunction(_ x: Tensor) throws -> Tensor {
        let shape = try x.shape
        let (b, c, h, wd) = (shape[0], shape[1], shape[2], shape[3])
        var t = try convIn(norm1(x)).reshaped([b, c, h * wd]).permuted([0, 2, 1])
        t = try t + attention(norm2(t))
        t = try t + feedForward(norm3(t))
        return try convOut(t.permuted([0, 2, 1]).reshaped([b, c, h, wd])) + x
    }
}

extension Tensor {
    /// (B, …) → (B, product of the rest).
    func flattenedItems() throws -> Tensor { try reshaped([shape[0], -1]) }
}
