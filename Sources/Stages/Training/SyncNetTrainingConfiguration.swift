import Foundation
import Inference
import PipelineCore

/// `configs/syncnet.toml`: what `pipelined train syncnet` trains on, which model, and how. Defaults
/// are LatentSync's `syncnet_16_pixel_attn` recipe (§2.3–2.4 of the reference notes); unknown keys
/// are errors, as in pipeline.conf.
public struct SyncNetTrainingConfiguration: Sendable {
    public struct Data: Sendable {
        /// `fileslist.txt` or `manifest.jsonl` of the curated dataset.
        public var list: URL
        /// Frames are resized to this square size; the model sees their lower half.
        public var resolution = 256
        /// Clips held out for validation; 0 = 5 % of the clips (at least one).
        public var validationClips = 0
        public var validationSamples = 2048
        public var validationBatchSize = 40
        /// Sample-building threads; 0 = all cores but one.
        public var loaderThreads = 0
        /// Where whole-clip mel spectrograms are cached (content-keyed); empty = `<output_dir>/mel_cache`.
        public var melCache: URL?
        /// Decoded clips kept in memory, in MiB.
        public var clipCacheMiB = 2048
    }

    public struct Train: Sendable {
        public var outputDirectory: URL
        /// Samples per device per micro-batch (the reference's 256 per GPU).
        public var batchSize = 256
        public var gradientAccumulation = 1
        public var optimizer = AdamW.Settings()
        public var maxGradientNorm = 1.0
        /// "auto" (fp16 on CUDA as the reference, float32 on the CPU), "no", "fp16", "bf16".
        public var mixedPrecision = "auto"
        public var maxSteps = 10_000_000
        public var checkpointEvery = 2500
        public var validateEvery = 2500
        public var logEvery = 10
        public var seed: UInt64 = 42
        /// "auto" (every CUDA device, else the CPU), "cpu", "cuda" (all), "cuda:0", "cuda:0,1".
        public var devices = "auto"
        /// Checkpoints kept (oldest removed first); 0 = all.
        public var keepCheckpoints = 0
    }

    public var data: Data
    public var model: StableSyncNet.Config
    /// Weights to start from when no checkpoint of this run exists (e.g. the released `stable_syncnet.pt`).
    public var initialWeights: String?
    public var train: Train

    public static func load(_ url: URL) throws -> SyncNetTrainingConfiguration {
        let text: String
        do { text = try String(contentsOf: url, encoding: .utf8) } catch {
            throw ConfigurationError.unreadable(file: url.path, message: error.localizedDescription)
        }
        return try SyncNetTrainingConfiguration(toml: text, source: url.path, relativeTo: url.deletingLastPathComponent())
    }

    public init(toml text: String, source: String, relativeTo folder: URL) throws {
        var r = try ConfigReader(toml: text, source: source)
        func path(_ p: String) -> URL { p.hasPrefix("/") ? URL(fileURLWithPath: p) : folder.appendingPathComponent(p).standardizedFileURL }
        func required(_ s: String, _ k: String) throws -> String {
            let v = try r.string(s, k, "", allowed: nil)
            guard !v.isEmpty else { throw ConfigurationError.outOfRange(file: source, key: "\(s).\(k)", value: "(unset)", allowed: "a path") }
            return v
        }
        data = Data(list: path(try required("data", "list")))
        data.resolution = try r.int("data", "resolution", data.resolution, range: 16...2048)
        guard data.resolution % 2 == 0 else { throw ConfigurationError.outOfRange(file: source, key: "data.resolution", value: "\(data.resolution)", allowed: "even sizes") }
        data.validationClips = try r.int("data", "validation_clips", data.validationClips, range: 0...1_000_000)
        data.validationSamples = try r.int("data", "validation_samples", data.validationSamples, range: 1...10_000_000)
        data.validationBatchSize = try r.int("data", "validation_batch_size", data.validationBatchSize, range: 1...65_536)
        data.loaderThreads = try r.int("data", "loader_threads", data.loaderThreads, range: 0...1024)
        let mel = try r.string("data", "mel_cache", "", allowed: nil)
        data.melCache = mel.isEmpty ? nil : path(mel)
        data.clipCacheMiB = try r.int("data", "clip_cache_mib", data.clipCacheMiB, range: 0...1_048_576)

        let preset = try r.string("model", "preset", "syncnet_16_pixel_attn", allowed: ["syncnet_16_pixel_attn", "syncnet_16_pixel", "custom"])
        var model = StableSyncNet.Config.syncnet16PixelAttention
        if preset == "syncnet_16_pixel" {
            model.audio.attentionBlocks = model.audio.attentionBlocks.map { _ in false }
            model.visual.attentionBlocks = model.visual.attentionBlocks.map { _ in false }
        }
        func tower(_ name: String, inChannels: Int, _ base: StableSyncNet.Config.Tower) throws -> StableSyncNet.Config.Tower {
            let channels = try r.integerArray("model", "\(name)_channels")
            let factors = try r.integerArray("model", "\(name)_factors")
            let attention = try r.integerArray("model", "\(name)_attention")
            guard preset == "custom" else {
                if channels != nil || factors != nil || attention != nil {
                    throw ConfigurationError.outOfRange(file: source, key: "model.\(name)_*", value: "set", allowed: "preset = \"custom\" (a preset fixes the towers)")
                }
                return base
            }
            guard let channels, let factors, let attention, channels.count == factors.count, channels.count == attention.count,
                  channels.allSatisfy({ $0.count == 1 && $0[0] > 0 && $0[0] % 32 == 0 }) else {
                throw ConfigurationError.outOfRange(file: source, key: "model.\(name)_channels/_factors/_attention", value: "…",
                                                    allowed: "three arrays of one entry per stage; channels multiples of 32 (GroupNorm(32))")
            }
            // The tower ends in GroupNorm(32) at 1×1: with fewer than 4 channels per group it normalises a
            // handful of numbers to ±1 (or to 0) and passes almost no gradient, so the model cannot learn.
            guard channels.last![0] >= 128 else {
                throw ConfigurationError.outOfRange(file: source, key: "model.\(name)_channels", value: "\(channels.last![0]) in the last stage",
                                                    allowed: "at least 128 (4 per GroupNorm group; the reference uses 2048)")
            }
            return StableSyncNet.Config.Tower(inChannels: inChannels, blockOutChannels: channels.map { $0[0] },
                                              downsampleFactors: factors.map { $0.count == 1 ? .both($0[0]) : .pair($0[0], $0[1]) },
                                              attentionBlocks: attention.map { $0[0] != 0 })
        }
        model.audio = try tower("audio", inChannels: 1, model.audio)
        model.visual = try tower("visual", inChannels: 3 * SyncNetClips.windowFrames, model.visual)
        model.resolution = data.resolution == 256 ? nil : data.resolution
        self.model = model
        let initial = try r.string("model", "init", "", allowed: nil)
        initialWeights = initial.isEmpty ? nil : path(initial).path

        train = Train(outputDirectory: path(try required("train", "output_dir")))
        train.batchSize = try r.int("train", "batch_size", train.batchSize, range: 1...65_536)
        train.gradientAccumulation = try r.int("train", "gradient_accumulation", train.gradientAccumulation, range: 1...65_536)
        train.optimizer.learningRate = try r.double("train", "learning_rate", train.optimizer.learningRate, range: 0...10)
        train.optimizer.weightDecay = try r.double("train", "weight_decay", train.optimizer.weightDecay, range: 0...10)
        train.optimizer.beta1 = try r.double("train", "beta1", train.optimizer.beta1, range: 0...0.999_999)
        train.optimizer.beta2 = try r.double("train", "beta2", train.optimizer.beta2, range: 0...0.999_999_999)
        train.optimizer.eps = try r.double("train", "eps", train.optimizer.eps, range: 0...1)
        train.maxGradientNorm = try r.double("train", "max_grad_norm", train.maxGradientNorm, range: 0.000_001...1e9)
        train.mixedPrecision = try r.string("train", "mixed_precision", train.mixedPrecision, allowed: ["auto", "no", "fp16", "bf16"])
        train.maxSteps = try r.int("train", "max_steps", train.maxSteps, range: 1...1_000_000_000)
        train.checkpointEvery = try r.int("train", "checkpoint_every", train.checkpointEvery, range: 1...1_000_000_000)
        train.validateEvery = try r.int("train", "validate_every", train.validateEvery, range: 1...1_000_000_000)
        train.logEvery = try r.int("train", "log_every", train.logEvery, range: 1...1_000_000)
        train.seed = UInt64(try r.int("train", "seed", Int(train.seed), range: 0...Int(Int32.max)))
        train.devices = try r.string("train", "devices", train.devices, allowed: nil)
        train.keepCheckpoints = try r.int("train", "keep_checkpoints", train.keepCheckpoints, range: 0...1_000_000)
        try r.rejectUnknownKeys()
    }

    /// The devices named by `train.devices`.
    public func resolveDevices(backend: TorchBackend) throws -> [Device] {
        let spec = train.devices.trimmingCharacters(in: .whitespaces)
        let available = backend.cudaDeviceCount
        switch spec {
        case "auto": return available > 0 ? (0..<available).map { .cuda($0) } : [.cpu]
        case "cpu": return [.cpu]
        case "cuda":
            guard available > 0 else { throw TrainingError.configuration("train.devices = \"cuda\" but the torch backend sees no CUDA device (\(backend.path))") }
            return (0..<available).map { .cuda($0) }
        default:
            guard spec.hasPrefix("cuda:") else { throw TrainingError.configuration("train.devices = \"\(spec)\": use auto, cpu, cuda or cuda:0,1,…") }
            let indices = spec.dropFirst(5).split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces)) }
            guard !indices.isEmpty, indices.allSatisfy({ $0 != nil }) else { throw TrainingError.configuration("train.devices = \"\(spec)\": device numbers expected after cuda:") }
            for index in indices.compactMap({ $0 }) where index >= available {
                throw TrainingError.configuration("train.devices names cuda:\(index), but the torch backend sees \(available) CUDA device(s)")
            }
            return indices.compactMap { $0 }.map { .cuda($0) }
        }
    }

    /// `mixed_precision` resolved for `devices`.
    public func precision(on devices: [Device]) throws -> TrainingPrecision {
        switch train.mixedPrecision {
        case "auto": return devices.contains(.cpu) ? .float32 : .float16
        case "no": return .float32
        case let other:
            guard !devices.contains(.cpu) else {
                throw TrainingError.configuration("train.mixed_precision = \"\(other)\" needs CUDA devices; on the CPU set it to \"no\" (or \"auto\")")
            }
            return other == "bf16" ? .bfloat16 : .float16
        }
    }
}
