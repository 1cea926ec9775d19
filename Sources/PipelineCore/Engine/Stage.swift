import Foundation

/// A pipeline stage: a value with a stable id, a fingerprint of what affects its results, and one
/// synchronous entry point that runs on a worker thread.
///
/// Rule: a stage decides about one item and returns an outcome; it never writes to the store itself.
/// Why: the engine commits the outcome and everything the stage hands on in one transaction, after
/// the artifact is in place, which is what makes `kill -9` at any instant safe.
public protocol Stage: Sendable {
    /// Which stage this is (stored as its raw value; never rename one).
    var stageID: StageID { get }
    /// Sources (stages 1–4) or clips (stages 5–8).
    var unit: WorkUnit { get }
    /// Hash of the configuration and code version that affect this stage's results.
    var fingerprint: String { get }
    /// Hash of the settings that change what later stages receive; settings that only change
    /// this stage's own side outputs (whether a copy is written, its CRF) are left out, so that
    /// toggling them does not redo later work. Defaults to `fingerprint`.
    var outputFingerprint: String { get }
    /// Whether the stage runs a model on an inference device (`StageContext.device`): a worker
    /// runs such stages on its device lanes, one model replica per device. Defaults to false.
    var usesDevice: Bool { get }
    func run(_ item: WorkItem, in context: StageContext) throws -> StageOutcome
}

extension Stage {
    /// The stage id as the store keeps it (`stageResult.stage`).
    public var id: String { stageID.rawValue }
    public var outputFingerprint: String { fingerprint }
    public var usesDevice: Bool { false }
}

public enum WorkUnit: String, Sendable { case source, clip }

/// The thing a stage works on.
public struct WorkItem: Sendable {
    public var source: SourceRecord
    /// Absolute path of the source file.
    public var sourcePath: String
    /// The clip, for stages whose unit is `.clip`.
    public var clip: ClipRecord?
    public var itemKey: String { clip.map { "c\($0.id!)" } ?? "s\(source.id!)" }
    /// How the item reads in messages: the source path, plus the clip's scene/segment.
    public var name: String {
        clip.map { "\(source.relativePath) scene \($0.sceneIndex + 1) segment \($0.segmentIndex)" } ?? source.relativePath
    }
    public init(source: SourceRecord, sourcePath: String, clip: ClipRecord? = nil) {
        self.source = source; self.sourcePath = sourcePath; self.clip = clip
    }
}

/// What a stage may read while it runs.
public struct StageContext: Sendable {
    public var store: any Ledger
    public var configuration: PipelineConfiguration
    public var inputDirectory: URL
    public var outputDirectory: URL
    public var outputs: OutputFiles
    /// Decoder threads per item (cores shared among the jobs running at once).
    public var decoderThreads: Int
    /// The chained output fingerprints of the stages before this one: everything this stage's
    /// input depends on. Stages that keep scores apart from decisions key them with it.
    public var upstreamFingerprint: String
    /// Each earlier stage's chained output fingerprint, by stage id: a score computed from one
    /// stage's files (the aligned clips) is keyed by that stage's entry, so that decisions taken
    /// in between (thresholds of other stages) do not invalidate it.
    public var chainFingerprints: [String: String]
    /// The worker this item runs on: what the worker's previous item of the same stage left for it.
    public var lane = WorkerLane()
    /// The inference device of the worker lane this item runs on (`pipelined work --devices`);
    /// nil: the configuration's `inference.device`.
    public var device: String?
}

/// A stage's verdict on one item. A rejection is data, not an error.
public enum StageOutcome: Sendable {
    case done(metrics: String?, artifact: String?, handOn: HandOn)
    case rejected(reason: String, metrics: String?, handOn: HandOn)

    public static func done(metrics: String? = nil, artifact: String? = nil) -> StageOutcome { .done(metrics: metrics, artifact: artifact, handOn: HandOn()) }
    public static func rejected(_ reason: String, metrics: String? = nil) -> StageOutcome { .rejected(reason: reason, metrics: metrics, handOn: HandOn()) }
}

/// What an outcome stores beside its row, in the same transaction: everything later stages read
/// from this one, as rows of their own tables (`HandOffRecords.swift`). An outcome's pieces, scores,
/// publications and side outputs replace whatever the same result recorded before.
public struct HandOn: Sendable {
    public var analyses: [AnalysisRecord] = []
    public var sourceUpdate: SourceUpdate?
    /// The source's clips (stage 4); nil leaves them as they are.
    public var clips: [ClipRecord]?
    /// Align: the pieces kept, numbered from 0.
    public var pieces: [AlignedPieceRecord] = []
    /// Sync / quality: per piece received, the score and the verdict.
    public var syncScores: [SyncScoreRecord] = []
    public var qualityScores: [QualityScoreRecord] = []
    /// Publish: the clips written.
    public var publications: [PublishedClipRecord] = []
    /// Files written only for the user (materialised copies), relative to the output directory.
    public var sideOutputs: [String] = []

    public init(analyses: [AnalysisRecord] = [], sourceUpdate: SourceUpdate? = nil, clips: [ClipRecord]? = nil,
                pieces: [AlignedPieceRecord] = [], syncScores: [SyncScoreRecord] = [], qualityScores: [QualityScoreRecord] = [],
                publications: [PublishedClipRecord] = [], sideOutputs: [String] = []) {
        self.analyses = analyses
        self.sourceUpdate = sourceUpdate
        self.clips = clips
        self.pieces = pieces
        self.syncScores = syncScores
        self.qualityScores = qualityScores
        self.publications = publications
        self.sideOutputs = sideOutputs
    }
}

/// Thrown by a stage when it could not do its work (as opposed to rejecting the item).
public struct StageError: Error, CustomStringConvertible {
    public var stage: String
    public var item: String
    public var message: String
    public init(stage: String, item: String, message: String) { self.stage = stage; self.item = item; self.message = message }
    public var description: String { "\(stage) failed on \(item): \(message)" }
}

/// Encodes a stage's measurements as the JSON stored in `stageResult.metrics`.
public func metricsJSON<T: Encodable>(_ value: T) -> String {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys]
    return (try? encoder.encode(value)).map { String(decoding: $0, as: UTF8.self) } ?? "{}"
}
