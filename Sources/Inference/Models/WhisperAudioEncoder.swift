#if canImport(Glibc)
import Glibc
#endif

/// Whisper's audio encoder (OpenAI `whisper/model.py` `AudioEncoder`, the `encoder.*` keys of
/// `tiny.pt`'s `model_state_dict`) as LatentSync's `Audio2Feature` uses it: every hidden state, not
/// only the last, and 30 s windows of log-mel zero-padded *after* the log (LatentSync's variant).
public struct WhisperAudioEncoder: Sendable {
    public struct Dimensions: Sendable, Equatable {
        public var melBands: Int, contextFrames: Int, width: Int, heads: Int, layers: Int
        public init(melBands: Int, contextFrames: Int, width: Int, heads: Int, layers: Int) {
            self.melBands = melBands; self.contextFrames = contextFrames; self.width = width; self.heads = heads; self.layers = layers
        }
        /// Whisper tiny: 80 mel bands, 1500 frames, 384 wide, 6 heads, 4 layers.
        public static let tiny = Dimensions(melBands: 80, contextFrames: 1500, width: 384, heads: 6, layers: 4)
    }

    public let dimensions: Dimensions
    let conv1: Conv, conv2: Conv
    let positional: Tensor
    let blocks: [Block]

    struct Block: Sendable {
        let attentionNorm: LayerNorm, attention: MultiHeadAttention, mlpNorm: LayerNorm, mlp0: Linear, mlp2: Linear

        func callAsFunction(_ x: Tensor) throws -> Tensor {
            // Whisper scales q and k each by d^(−1/4): the same as the usual 1/√d on q·kᵀ.
            let h = try x + attention(attentionNorm(x))
            return try h + mlp2(mlp0(mlpNorm(h)).activation(.gelu))
        }
    }

    public init(_ w: WeightSource, dimensions d: Dimensions = .tiny) throws {
        dimensions = d
        let root = WeightPath()("encoder")
        conv1 = try Conv(w, root("conv1"), in: d.melBands, out: d.width, kernel: [3], padding: [1])
        conv2 = try Conv(w, root("conv2"), in: d.width, out: d.width, kernel: [3], stride: [2], padding: [1])
        positional = try w.tensor(root("positional_embedding"), shape: [d.contextFrames, d.width], role: .buffer)
        blocks = try (0..<d.layers).map { i in
            let b = root("blocks")[i]
            return Block(attentionNorm: try LayerNorm(w, b("attn_ln"), features: d.width),
                         attention: try MultiHeadAttention(w, b("attn"), channels: d.width, heads: d.heads, qkvBias: true, keyBias: false, names: .whisper),
                         mlpNorm: try LayerNorm(w, b("mlp_ln"), features: d.width),
                         mlp0: try Linear(w, b("mlp")[0], in: d.width, out: 4 * d.width),
                         mlp2: try Linear(w, b("mlp")[2], in: 4 * d.width, out: d.width))
        }
        // `ln_post` is in every checkpoint but LatentSync's features are taken before it.
        _ = try LayerNorm(w, root("ln_post"), features: d.width)
    }

    /// Loads the encoder from a Whisper checkpoint's state dict (`model_state_dict` of `tiny.pt`, or
    /// its `encoder.*` entries); the decoder's keys are left alone.
    public static func load(_ archive: any TensorArchive, dimensions: Dimensions = .tiny, device: Device = .cpu, dtype: DType = .float32) throws -> (WhisperAudioEncoder, StrictLoader.Report) {
        let loader = StrictLoader(archive)
        let model = try WhisperAudioEncoder(WeightSource(loader, device: device, dtype: dtype), dimensions: dimensions)
        return (model, try loader.finish(ignoring: [], ignoringPrefixes: ["decoder."]))
    }

    /// The sinusoidal table Whisper stores as `positional_embedding` (sin in the first half of the
    /// channels, cos in the second, timescales exp(−c·ln(10000)/(C/2 − 1))), for random weights.
    public static func sinusoids(frames: Int, width: Int) -> [Float] {
        let half = width / 2, step = log(10000.0) / Double(half - 1)
        var table = [Float](repeating: 0, count: frames * width)
        for t in 0..<frames {
            for c in 0..<half {
                let angle = Double(t) * exp(-step * Double(c))
                table[t * width + c] = Float(sin(angle)); table[t * width + half + c] = Float(cos(angle))
            }
        }
        return table
    }

    /// (B, 80, 3000) log-mel windows → the conv stem's output (B, 1500, C) and the 1 + layers hidden
    /// states (B, 1500, C) each: state 0 = stem + positions, state b + 1 = block b's output.
    public func hiddenStates(_ mel: Tensor) throws -> (stem: Tensor, states: [Tensor]) {
        let dtype = positional.dtype ?? .float32
        let mel = try mel.dtype == dtype ? mel : mel.to(mel.device, dtype)
        let stem = try conv2(conv1(mel).activation(.gelu)).activation(.gelu).permuted([0, 2, 1])
        var states = [try stem + positional]
        for block in blocks { states.append(try block(states.last!)) }
        return (stem, states)
    }
}

extension WhisperAudioEncoder {
    /// LatentSync's feature array F (T, 5, C) for a whole file's log-mel ([80][M] frames): 30 s windows
    /// (3000 mel frames, zero-padded after the log), all hidden states per encoder frame, keeping
    /// `(real frames in the window) / 2` frames of each. Flattened row-major.
    public func features(logMel: [[Float]], device: Device = .cpu) throws -> (values: [Float], frames: Int) {
        let bands = dimensions.melBands, window = 2 * dimensions.contextFrames, c = dimensions.width
        let total = logMel.first?.count ?? 0
        var values: [Float] = [], frames = 0
        for seek in Swift.stride(from: 0, to: total, by: window) {
            let real = min(window, total - seek)
            var input = [Float](repeating: 0, count: bands * window)
            for b in 0..<bands { for t in 0..<real { input[b * window + t] = logMel[b][seek + t] } }
            let states = try hiddenStates(Tensor(input, shape: [1, bands, window], device: device)).states
            let keep = real / 2
            // (1 + layers) states of (1500, C) → (keep, states, C).
            let stacked = try Tensor.cat(states.map { try $0.narrowed(1, 0..<keep).reshaped([keep, 1, c]) }, dim: 1).floats()
            values += stacked
            frames += keep
        }
        return (values, frames)
    }

    /// The (50, C) audio context of video frame `i` at 25 fps (`get_sliced_feature`, audio_feat_length
    /// [2, 2]): feature frames 2i − 4 … 2i + 5, clamped to the array, each with its 5 states; row
    /// 5j + s = index j, state s.
    public static func chunk(_ features: [Float], frames: Int, states: Int = 5, width: Int, videoFrame i: Int) -> [Float] {
        let centre = Int(Double(i) * 50 / 25)
        var out: [Float] = []
        out.reserveCapacity(10 * states * width)
        for index in (centre - 4)...(centre + 5) {
            let j = min(max(index, 0), frames - 1)
            out += features[(j * states * width)..<((j + 1) * states * width)]
        }
        return out
    }

    /// How many video frames the features cover (`feature2chunks` stops after the first i with 2i > T).
    public static func chunkCount(frames: Int) -> Int { frames / 2 + 2 }
}
