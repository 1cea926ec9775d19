import Foundation
import TOMLKit

/// Everything `pipeline.conf` can set. Defaults equal the LatentSync recipe unless a key says why
/// not; the repository's `pipeline.conf` documents each key with its default.
public struct PipelineConfiguration: Sendable, Codable, Equatable {
    public struct Run: Sendable, Codable, Equatable {
        /// Items processed at once; 0 = the number of cores.
        public var jobs = 0
        /// Tries per item before a failure is final (a process killed while working on an item counts).
        public var maxAttempts = 3
        /// Wait before retrying a failed item, doubled per attempt.
        public var retryBackoffSeconds = 30.0
        /// A run refuses to mark more than this share of the active sources gone at once (an unmounted
        /// input disk must not empty the dataset); `run --allow-mass-removal` overrides it.
        public var maxGoneShare = 0.5
    }
    public struct Broken: Sendable, Codable, Equatable {
        /// Shorter sources cannot yield a 5 s clip.
        public var minDurationSeconds = 5.0
        /// Damaged packets or frames per decoded packet above which a source is rejected.
        public var maxDecodeErrorRate = 0.01
        /// Reject a source whose content equals an earlier source's ("duplicate of <path>"): the same
        /// clips twice would leak between training and validation splits. Decided at discovery
        /// (`PipelineStore.syncSources`), so it is not part of stage 1's fingerprint: toggling it
        /// re-decides only the duplicates.
        public var rejectDuplicates = true
        /// Audio frames whose loudest channel stays below this level (RMS, dBFS) are silent…
        public var silenceDBFS = -60.0
        /// …and a source whose audio is silent for more than this share of its length is rejected:
        /// it cannot teach lip sync (a muted microphone, a track of digital silence).
        public var maxSilentShare = 0.9

        // The encoded form is stage 1's fingerprint. `rejectDuplicates` is decided at discovery and
        // stays out; the silence settings enter only when they differ from their defaults, so that
        // databases written before they existed keep their fingerprints (no rescan of every source).
        enum CodingKeys: String, CodingKey { case minDurationSeconds, maxDecodeErrorRate, silenceDBFS, maxSilentShare }

        public init() {}

        public func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(minDurationSeconds, forKey: .minDurationSeconds)
            try c.encode(maxDecodeErrorRate, forKey: .maxDecodeErrorRate)
            let defaults = Broken()
            if silenceDBFS != defaults.silenceDBFS || maxSilentShare != defaults.maxSilentShare {
                try c.encode(silenceDBFS, forKey: .silenceDBFS)
                try c.encode(maxSilentShare, forKey: .maxSilentShare)
            }
        }

        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            minDurationSeconds = try c.decode(Double.self, forKey: .minDurationSeconds)
            maxDecodeErrorRate = try c.decode(Double.self, forKey: .maxDecodeErrorRate)
            silenceDBFS = try c.decodeIfPresent(Double.self, forKey: .silenceDBFS) ?? silenceDBFS
            maxSilentShare = try c.decodeIfPresent(Double.self, forKey: .maxSilentShare) ?? maxSilentShare
        }
    }
    public struct Normalize: Sendable, Codable, Equatable {
        public var fps = 25
        public var sampleRate = 16_000
        /// Write `resampled/<relative path>.mp4`; otherwise later stages read through the frame map.
        public var materialize = false
        public var crf = 18
        public var preset = "veryfast"
    }

    public struct Scenes: Sendable, Codable, Equatable {
        /// "adaptive" (the reference: `detect-adaptive --threshold 2`) or "content".
        public var detector = "adaptive"
        /// Content detector: cut where the frame score reaches this.
        public var threshold = 27.0
        /// Adaptive detector: cut where score / mean of the neighbours' scores reaches this.
        public var adaptiveThreshold = 2.0
        /// Adaptive detector: neighbours on each side.
        public var windowWidth = 2
        /// Adaptive detector: a cut also needs this score.
        public var minContentVal = 15.0
        /// Frames of the 25 fps timeline between cuts (PySceneDetect's 0.6 s at 25 fps).
        public var minSceneLen = 15
        public var weightHue = 1.0
        public var weightSat = 1.0
        public var weightLum = 1.0
        /// Score luma only (weights 0, 0, 1), PySceneDetect's `luma_only`.
        public var lumaOnly = false
        /// Downscale factor before scoring; 0 = PySceneDetect's automatic `width // 256`.
        public var downscale = 0

        public var weights: ContentWeights { lumaOnly ? .lumaOnly : ContentWeights(hue: weightHue, saturation: weightSat, luma: weightLum) }
    }
    public struct Segment: Sendable, Codable, Equatable {
        public var minSeconds = 5.0
        public var maxSeconds = 10.0
        /// Pieces are cut at this length; the remainder of a scene is folded into its last piece.
        public var targetSeconds = 5.0
        /// Also write segmented/<name>_shot_NNN_MMM.mp4 (the reference's names).
        public var materialize = false
        public var crf = 18
    }

    public struct Align: Sendable, Codable, Equatable {
        /// Output size: 256 (LatentSync 1.5) or 512 (1.6).
        public var resolution = 256
        public var crf = 18
        public var preset = "veryfast"
        /// The older reference's smoothing of landmarks and nose bias (per clip). Off by default: it
        /// lags a moving face by several pixels (measured in AlignStageTests); exact when on.
        public var smoothing = false
        public var landmarkModel = "/usr/share/dlib/shape_predictor_68_face_landmarks.dat"
        public var tracker = FaceTracker.Settings()
    }

    public struct Sync: Sendable, Codable, Equatable {
        /// `correlation` (weight-free, the default); `syncnet_v2` and `stable_syncnet` need weights.
        public var method = "correlation"
        /// Offsets searched: −search_frames…+search_frames (SyncNet v2's vshift).
        public var searchFrames = 15
        /// Keep when the confidence is at least this, in the method's units: for `correlation` the
        /// prominence of the correlation peak over its best rival (calibrated in SyncTests: talking
        /// clips 0.23–0.40, the same picture with unrelated speech 0.01–0.16); SyncNet v2's is 3.
        public var minConfidence = 0.2
        /// Keep when |offset| is at most this many frames (the reference's 6).
        public var maxOffset = 6
        /// `syncnet_v2`: the reference's `syncnet_v2.model` (torch checkpoint) or a safetensors file of it.
        public var syncnetV2Weights = ""
        /// `syncnet_v2` confidence (median − minimum of the mean distances); the reference keeps ≥ 3.
        public var syncnetV2MinConfidence = 3.0
        /// `stable_syncnet`: `stable_syncnet.pt` (the shipped configuration) or a checkpoint written by
        /// `pipelined train syncnet` (its configuration travels in the file).
        public var stableSyncnetWeights = ""
        /// `stable_syncnet` confidence: median − minimum of the mean cosine distances (1 − cos) over the
        /// offsets, in 0…1. Not calibrated against the released model here; check `pipelined report`.
        public var stableSyncnetMinConfidence = 0.05
        /// `stable_syncnet`: a 16-frame visual window starts every this many frames (audio windows at every frame).
        public var stableSyncnetStride = 4

        /// The threshold of the configured method.
        public var methodMinConfidence: Double {
            switch method {
            case "syncnet_v2": syncnetV2MinConfidence
            case "stable_syncnet": stableSyncnetMinConfidence
            default: minConfidence
            }
        }
    }

    public struct Quality: Sendable, Codable, Equatable {
        /// `brisque` (OpenCV contrib's quality module, Debian's opencv-data model; the default) or
        /// `hyperiqa` (needs weights).
        public var method = "brisque"
        /// BRISQUE: lower is better (0 pristine … 100 very poor); keep at or below this.
        public var maxBrisque = 50.0
        public var brisqueModel = "/usr/share/opencv4/quality/brisque_model_live.yml"
        public var brisqueRange = "/usr/share/opencv4/quality/brisque_range_live.yml"
        /// `hyperiqa`: the reference's `koniq_pretrained.pkl` (torch checkpoint) or a safetensors file of it.
        public var hyperiqaWeights = ""
        /// hyperIQA: higher is better (KonIQ scale 0…100); the reference keeps ≥ 40.
        public var minHyperiqa = 40.0
    }

    /// Where the model-backed methods run.
    public struct Inference: Sendable, Codable, Equatable {
        /// `auto` (the first CUDA device when the torch backend has one, else the CPU), `cpu` or `cuda:N`.
        public var device = "auto"
    }

    public var run = Run()
    public var broken = Broken()
    public var normalize = Normalize()
    public var scenes = Scenes()
    public var segment = Segment()
    public var align = Align()
    public var sync = Sync()
    public var quality = Quality()
    public var inference = Inference()

    public init() {}

    /// Reads a TOML document. Unknown sections or keys are errors (a typo must not silently fall
    /// back to a default), and so are values of the wrong type or out of range.
    public init(toml text: String, source: String = "pipeline.conf") throws {
        let table: TOMLTable
        do { table = try TOMLTable(string: text) } catch let e as TOMLParseError {
            throw ConfigurationError.syntax(file: source, line: e.source.begin.line, message: e.description)
        }
        var reader = ConfigReader(root: table, source: source)
        run.jobs = try reader.int("run", "jobs", run.jobs, range: 0...1024)
        run.maxAttempts = try reader.int("run", "max_attempts", run.maxAttempts, range: 1...100)
        run.retryBackoffSeconds = try reader.double("run", "retry_backoff_seconds", run.retryBackoffSeconds, range: 0...86_400)
        run.maxGoneShare = try reader.double("run", "max_gone_share", run.maxGoneShare, range: 0...1)
        broken.minDurationSeconds = try reader.double("broken", "min_duration_seconds", broken.minDurationSeconds, range: 0...86_400)
        broken.maxDecodeErrorRate = try reader.double("broken", "max_decode_error_rate", broken.maxDecodeErrorRate, range: 0...1)
        broken.rejectDuplicates = try reader.bool("broken", "reject_duplicates", broken.rejectDuplicates)
        broken.silenceDBFS = try reader.double("broken", "silence_dbfs", broken.silenceDBFS, range: -200...0)
        broken.maxSilentShare = try reader.double("broken", "max_silent_share", broken.maxSilentShare, range: 0...1)
        // The recipe's rates are not a preference: the sync methods, the mel and Whisper features and
        // LatentSync's trainers all assume 25 fps with 16 kHz audio (640 samples per frame); any
        // other value made every clip fail or be rejected, one by one.
        normalize.fps = try reader.int("normalize", "fps", normalize.fps, range: 25...25,
                                       why: "25 (the recipe's frame rate: every sync method and LatentSync's trainers assume 25 fps)")
        normalize.sampleRate = try reader.int("normalize", "sample_rate", normalize.sampleRate, range: 16_000...16_000,
                                              why: "16000 (the recipe's sample rate: SyncNet's MFCC, the mel and Whisper features assume 16 kHz)")
        normalize.materialize = try reader.bool("normalize", "materialize", normalize.materialize)
        normalize.crf = try reader.int("normalize", "crf", normalize.crf, range: 0...51)
        normalize.preset = try reader.string("normalize", "preset", normalize.preset,
                                             allowed: ["ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow"])
        scenes.detector = try reader.string("scenes", "detector", scenes.detector, allowed: ["adaptive", "content"])
        scenes.threshold = try reader.double("scenes", "threshold", scenes.threshold, range: 0...255)
        scenes.adaptiveThreshold = try reader.double("scenes", "adaptive_threshold", scenes.adaptiveThreshold, range: 0...255)
        scenes.windowWidth = try reader.int("scenes", "window_width", scenes.windowWidth, range: 1...100)
        scenes.minContentVal = try reader.double("scenes", "min_content_val", scenes.minContentVal, range: 0...255)
        scenes.minSceneLen = try reader.int("scenes", "min_scene_len", scenes.minSceneLen, range: 0...100_000)
        scenes.weightHue = try reader.double("scenes", "weight_hue", scenes.weightHue, range: 0...1_000)
        scenes.weightSat = try reader.double("scenes", "weight_sat", scenes.weightSat, range: 0...1_000)
        scenes.weightLum = try reader.double("scenes", "weight_lum", scenes.weightLum, range: 0...1_000)
        scenes.lumaOnly = try reader.bool("scenes", "luma_only", scenes.lumaOnly)
        scenes.downscale = try reader.int("scenes", "downscale", scenes.downscale, range: 0...64)
        if scenes.weightHue + scenes.weightSat + scenes.weightLum <= 0 {
            throw ConfigurationError.outOfRange(file: source, key: "scenes.weight_*", value: "all 0", allowed: "at least one weight above 0")
        }
        segment.minSeconds = try reader.double("segment", "min_seconds", segment.minSeconds, range: 0.04...3_600)
        segment.maxSeconds = try reader.double("segment", "max_seconds", segment.maxSeconds, range: 0.04...3_600)
        segment.targetSeconds = try reader.double("segment", "target_seconds", segment.targetSeconds, range: 0.04...3_600)
        segment.materialize = try reader.bool("segment", "materialize", segment.materialize)
        segment.crf = try reader.int("segment", "crf", segment.crf, range: 0...51)
        align.resolution = try reader.int("align", "resolution", align.resolution, range: 64...2048)
        guard align.resolution % 2 == 0 else {
            throw ConfigurationError.outOfRange(file: source, key: "align.resolution", value: "\(align.resolution)", allowed: "even sizes (256, 512)")
        }
        align.crf = try reader.int("align", "crf", align.crf, range: 0...51)
        align.preset = try reader.string("align", "preset", align.preset,
                                         allowed: ["ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow"])
        align.smoothing = try reader.bool("align", "smoothing", align.smoothing)
        align.landmarkModel = try reader.string("align", "landmark_model", align.landmarkModel, allowed: nil)
        align.tracker.detectWidth = try reader.int("align", "detect_width", align.tracker.detectWidth, range: 0...8192)
        align.tracker.redetectEvery = try reader.int("align", "redetect_every", align.tracker.redetectEvery, range: 1...10_000)
        align.tracker.minFaceWidth = try reader.int("align", "min_face_width", align.tracker.minFaceWidth, range: 1...8192)
        align.tracker.minFaceHeight = try reader.int("align", "min_face_height", align.tracker.minFaceHeight, range: 1...8192)
        align.tracker.refreshAroundFace = try reader.bool("align", "refresh_around_face", align.tracker.refreshAroundFace)
        sync.method = try reader.string("sync", "method", sync.method, allowed: ["correlation", "syncnet_v2", "stable_syncnet"])
        sync.searchFrames = try reader.int("sync", "search_frames", sync.searchFrames, range: 1...50)
        sync.minConfidence = try reader.double("sync", "min_confidence", sync.minConfidence, range: -1_000...1_000)
        sync.maxOffset = try reader.int("sync", "max_offset", sync.maxOffset, range: 0...50)
        sync.syncnetV2Weights = try reader.string("sync", "syncnet_v2_weights", sync.syncnetV2Weights, allowed: nil)
        sync.syncnetV2MinConfidence = try reader.double("sync", "syncnet_v2_min_confidence", sync.syncnetV2MinConfidence, range: -1_000...1_000)
        sync.stableSyncnetWeights = try reader.string("sync", "stable_syncnet_weights", sync.stableSyncnetWeights, allowed: nil)
        sync.stableSyncnetMinConfidence = try reader.double("sync", "stable_syncnet_min_confidence", sync.stableSyncnetMinConfidence, range: -1...1)
        sync.stableSyncnetStride = try reader.int("sync", "stable_syncnet_stride", sync.stableSyncnetStride, range: 1...16)
        quality.method = try reader.string("quality", "method", quality.method, allowed: ["brisque", "hyperiqa"])
        quality.hyperiqaWeights = try reader.string("quality", "hyperiqa_weights", quality.hyperiqaWeights, allowed: nil)
        quality.minHyperiqa = try reader.double("quality", "min_hyperiqa", quality.minHyperiqa, range: -1_000...1_000)
        inference.device = try reader.string("inference", "device", inference.device, allowed: nil)
        try Self.requireWeights(method: sync.method, needing: ["syncnet_v2": ("sync.syncnet_v2_weights", sync.syncnetV2Weights, "syncnet_v2.model"),
                                                               "stable_syncnet": ("sync.stable_syncnet_weights", sync.stableSyncnetWeights, "stable_syncnet.pt")],
                                key: "sync.method", source: source)
        try Self.requireWeights(method: quality.method, needing: ["hyperiqa": ("quality.hyperiqa_weights", quality.hyperiqaWeights, "koniq_pretrained.pkl")],
                                key: "quality.method", source: source)
        quality.maxBrisque = try reader.double("quality", "max_brisque", quality.maxBrisque, range: -1_000...1_000)
        quality.brisqueModel = try reader.string("quality", "brisque_model", quality.brisqueModel, allowed: nil)
        quality.brisqueRange = try reader.string("quality", "brisque_range", quality.brisqueRange, allowed: nil)
        guard segment.minSeconds <= segment.targetSeconds, segment.targetSeconds <= segment.maxSeconds else {
            throw ConfigurationError.outOfRange(file: source, key: "segment.target_seconds", value: "\(segment.targetSeconds)",
                                                allowed: "min_seconds (\(segment.minSeconds)) ... max_seconds (\(segment.maxSeconds))")
        }
        try reader.rejectUnknownKeys()
    }

    /// Checks, before any work starts, that the model files the configured methods read exist:
    /// a missing one would otherwise fail every clip, one by one.
    public func checkModelFiles(source: String = "pipeline.conf") throws {
        var wanted = [("align.landmark_model", align.landmarkModel,
                       "install Debian's libdlib-data (it ships shape_predictor_68_face_landmarks.dat) or set [align] landmark_model")]
        if quality.method == "brisque" {
            wanted.append(("quality.brisque_model", quality.brisqueModel, "install Debian's opencv-data (it ships the BRISQUE model) or set [quality] brisque_model"))
            wanted.append(("quality.brisque_range", quality.brisqueRange, "install Debian's opencv-data (it ships the BRISQUE range file) or set [quality] brisque_range"))
        }
        for (key, path, hint) in wanted {
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), !isDirectory.boolValue,
                  FileManager.default.isReadableFile(atPath: path) else {
                throw ConfigurationError.missingFile(file: source, key: key, path: path, hint: hint)
            }
        }
    }

    /// A model-backed method needs its weights named; say which key and which reference file.
    static func requireWeights(method: String, needing: [String: (key: String, value: String, file: String)], key: String, source: String) throws {
        guard let need = needing[method], need.value.isEmpty else { return }
        throw ConfigurationError.outOfRange(file: source, key: key, value: "\"\(method)\"",
                                            allowed: "methods with weights: set \(need.key) to the path of \(need.file) (nothing is downloaded)")
    }

    /// Loads `url`, or the defaults when `url` is nil.
    public static func load(_ url: URL?) throws -> PipelineConfiguration {
        guard let url else { return PipelineConfiguration() }
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: url.path, isDirectory: &isDirectory), isDirectory.boolValue {
            throw ConfigurationError.unreadable(file: url.path, message: "it is a folder; pass the pipeline.conf file itself")
        }
        guard FileManager.default.fileExists(atPath: url.path) else {
            throw ConfigurationError.unreadable(file: url.path, message: "no such file (the repository's pipeline.conf lists every key with its default)")
        }
        let text: String
        do { text = try String(contentsOf: url, encoding: .utf8) } catch {
            throw ConfigurationError.unreadable(file: url.path, message: error.localizedDescription)
        }
        return try PipelineConfiguration(toml: text, source: url.path)
    }
}

public enum ConfigurationError: Error, CustomStringConvertible, Equatable {
    case syntax(file: String, line: Int, message: String)
    case unreadable(file: String, message: String)
    case unknownKey(file: String, key: String, known: [String])
    case wrongType(file: String, key: String, expected: String)
    case outOfRange(file: String, key: String, value: String, allowed: String)
    case missingFile(file: String, key: String, path: String, hint: String)

    public var description: String {
        switch self {
        case let .syntax(file, line, message): "\(file):\(line): \(message)"
        case let .unreadable(file, message): "cannot read \(file): \(message)"
        case let .unknownKey(file, key, known): "\(file): unknown key \"\(key)\"; known keys: \(known.joined(separator: ", "))"
        case let .wrongType(file, key, expected): "\(file): \(key) must be \(expected)"
        case let .outOfRange(file, key, value, allowed): "\(file): \(key) = \(value) is outside \(allowed)"
        case let .missingFile(file, key, path, hint): "\(file): \(key) = \(path): no such readable file; \(hint)"
        }
    }
}

/// Reads typed values from a TOML table and remembers which keys it was asked for (pipeline.conf
/// and the training configurations share it: same errors, same strictness about unknown keys).
public struct ConfigReader {
    let root: TOMLTable
    public let source: String
    var known: [String] = []

    init(root: TOMLTable, source: String) { self.root = root; self.source = source }

    /// Parses `text`; syntax errors name the file and line.
    public init(toml text: String, source: String) throws {
        do { root = try TOMLTable(string: text) } catch let e as TOMLParseError {
            throw ConfigurationError.syntax(file: source, line: e.source.begin.line, message: e.description)
        }
        self.source = source
    }

    /// Integers, or pairs of integers, of an array value (e.g. `[[2, 1], 2, 2]`); nil when absent.
    public mutating func integerArray(_ s: String, _ k: String) throws -> [[Int]]? {
        guard let v = try value(s, k) else { return nil }
        guard let array = v.array else { throw ConfigurationError.wrongType(file: source, key: "\(s).\(k)", expected: "an array") }
        return try array.map { element in
            if let i = element.int { return [i] }
            if let pair = element.array, let ints = Optional(pair.compactMap(\.int)), ints.count == pair.count { return ints }
            throw ConfigurationError.wrongType(file: source, key: "\(s).\(k)", expected: "an array of integers or [integer, integer] pairs")
        }
    }

    private mutating func value(_ section: String, _ key: String) throws -> TOMLValueConvertible? {
        known.append("\(section).\(key)")
        guard let sectionValue = root[section] else { return nil }
        guard let table = sectionValue.table else { throw ConfigurationError.wrongType(file: source, key: section, expected: "a table ([\(section)])") }
        return table[key]
    }

    public mutating func int(_ s: String, _ k: String, _ d: Int, range: ClosedRange<Int>, why: String? = nil) throws -> Int {
        guard let v = try value(s, k) else { return d }
        guard let i = v.int else { throw ConfigurationError.wrongType(file: source, key: "\(s).\(k)", expected: "an integer") }
        guard range.contains(i) else { throw ConfigurationError.outOfRange(file: source, key: "\(s).\(k)", value: "\(i)", allowed: why ?? "\(range)") }
        return i
    }

    public mutating func double(_ s: String, _ k: String, _ d: Double, range: ClosedRange<Double>) throws -> Double {
        guard let v = try value(s, k) else { return d }
        guard let x = v.double ?? v.int.map(Double.init) else { throw ConfigurationError.wrongType(file: source, key: "\(s).\(k)", expected: "a number") }
        guard range.contains(x) else { throw ConfigurationError.outOfRange(file: source, key: "\(s).\(k)", value: "\(x)", allowed: "\(range)") }
        return x
    }

    public mutating func bool(_ s: String, _ k: String, _ d: Bool) throws -> Bool {
        guard let v = try value(s, k) else { return d }
        guard let b = v.bool else { throw ConfigurationError.wrongType(file: source, key: "\(s).\(k)", expected: "true or false") }
        return b
    }

    public mutating func string(_ s: String, _ k: String, _ d: String, allowed: [String]?) throws -> String {
        guard let v = try value(s, k) else { return d }
        guard let x = v.string else { throw ConfigurationError.wrongType(file: source, key: "\(s).\(k)", expected: "a string") }
        guard let allowed else { return x }
        guard allowed.contains(x) else { throw ConfigurationError.outOfRange(file: source, key: "\(s).\(k)", value: x, allowed: allowed.joined(separator: "|")) }
        return x
    }

    public func rejectUnknownKeys() throws {
        let sections = Set(known.map { String($0.split(separator: ".")[0]) })
        for section in root.keys {
            guard sections.contains(section) else { throw ConfigurationError.unknownKey(file: source, key: section, known: known) }
            guard let table = root[section]?.table else { continue }
            for key in table.keys where !known.contains("\(section).\(key)") {
                throw ConfigurationError.unknownKey(file: source, key: "\(section).\(key)", known: known.filter { $0.hasPrefix(section + ".") })
            }
        }
    }
}
