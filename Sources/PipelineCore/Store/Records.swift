import Foundation
import GRDB

/// One `run` of the pipeline (a row per `pipelined run` invocation).
public struct RunRecord: Codable, Sendable, FetchableRecord, MutablePersistableRecord {
    public static let databaseTableName = "run"
    public var id: Int64?
    public var startedAt: Date
    public var finishedAt: Date?
    public var heartbeatAt: Date
    public var host: String
    public var pid: Int32
    public var version: String
    public var status: RunStatus
    /// JSON: per-stage counts of what this run did.
    public var counts: String?
    /// The inference devices of its model lanes, comma-separated (v5); nil without device lanes.
    public var devices: String? = nil

    public mutating func didInsert(_ inserted: InsertionSuccess) { id = inserted.rowID }
}

/// One input file, identified by its path relative to the input directory.
public struct SourceRecord: Codable, Sendable, FetchableRecord, MutablePersistableRecord {
    public static let databaseTableName = "source"
    public var id: Int64?
    public var relativePath: String
    public var size: Int64
    public var mtime: Double
    /// SHA-256 of the whole file (64 hex digits, `Fingerprint.ofWholeFile`); databases written
    /// before v2 hold the 32-digit digest of the size and the first and last MiB instead.
    public var contentHash: String
    public var discoveredAt: Date
    /// Set while the file is missing from the input directory.
    public var goneAt: Date?
    /// Stream metadata as JSON (`[StreamInfo]`), filled by stage 1.
    public var probe: String?
    public var durationSeconds: Double?
    /// Why the file cannot be processed as it is (a name that is not UTF-8 or holds a line break, a
    /// dangling link, an unreadable file); stage 1 rejects such a source with this reason.
    public var problem: String?
    /// `<dir>/<name>` that every output file of this source is named after (`<name>_shot_NNN_MMM.mp4`);
    /// unique across sources (`OutputNaming`). Nil only in rows that never went through migration v2.
    public var outputStem: String?

    public init(id: Int64? = nil, relativePath: String, size: Int64, mtime: Double, contentHash: String, discoveredAt: Date,
                goneAt: Date? = nil, probe: String? = nil, durationSeconds: Double? = nil, problem: String? = nil, outputStem: String? = nil) {
        self.id = id; self.relativePath = relativePath; self.size = size; self.mtime = mtime; self.contentHash = contentHash
        self.discoveredAt = discoveredAt; self.goneAt = goneAt; self.probe = probe; self.durationSeconds = durationSeconds
        self.problem = problem; self.outputStem = outputStem
    }

    /// What output files are named after (see `outputStem`).
    public var namingStem: String { outputStem ?? OutputNaming.referenceStem(of: relativePath) }

    public mutating func didInsert(_ inserted: InsertionSuccess) { id = inserted.rowID }
}

/// A piece of a scene: frames `startFrame..<endFrame` of its source's 25 fps timeline.
public struct ClipRecord: Codable, Sendable, Equatable, FetchableRecord, MutablePersistableRecord {
    public static let databaseTableName = "clip"
    public var id: Int64?
    public var sourceId: Int64
    public var sceneIndex: Int
    public var segmentIndex: Int
    public var startFrame: Int
    public var endFrame: Int

    public init(id: Int64? = nil, sourceId: Int64, sceneIndex: Int, segmentIndex: Int, startFrame: Int, endFrame: Int) {
        self.id = id; self.sourceId = sourceId; self.sceneIndex = sceneIndex; self.segmentIndex = segmentIndex
        self.startFrame = startFrame; self.endFrame = endFrame
    }

    public mutating func didInsert(_ inserted: InsertionSuccess) { id = inserted.rowID }
}

/// The outcome of one stage on one item, under one configuration fingerprint.
public struct StageResultRecord: Codable, Sendable, FetchableRecord, MutablePersistableRecord {
    public static let databaseTableName = "stageResult"
    public var id: Int64?
    public var stage: String
    public var sourceId: Int64
    public var clipId: Int64?
    /// "s<sourceId>" or "c<clipId>": the unit the stage works on.
    public var itemKey: String
    public var fingerprint: String
    /// pending | running | done | rejected | failed
    public var state: ItemState
    public var attempts: Int
    public var reason: String?
    /// JSON object of the stage's measurements.
    public var metrics: String?
    /// Path of the produced file, relative to the output directory.
    public var artifactPath: String?
    public var startedAt: Date?
    public var finishedAt: Date?
    public var seconds: Double?
    public var runId: Int64?
    public var leaseExpiresAt: Date?
    public var nextAttemptAt: Date?
    /// 1 once a newer fingerprint or an upstream change made this row history.
    public var superseded: Bool

    public mutating func didInsert(_ inserted: InsertionSuccess) { id = inserted.rowID }
}

/// A product of the scan pass kept for later stages (the frame map; stage 3's scores next).
public struct AnalysisRecord: Codable, Sendable, FetchableRecord, PersistableRecord {
    public static let databaseTableName = "analysis"
    public var sourceId: Int64
    public var kind: String
    public var fingerprint: String
    public var data: Data

    public init(sourceId: Int64, kind: String, fingerprint: String, data: Data) {
        self.sourceId = sourceId
        self.kind = kind
        self.fingerprint = fingerprint
        self.data = data
    }
}

/// A result's state, stored as checked text (`stageResult.state`; never rename a raw value).
public enum ItemState: String, Codable, Sendable, CaseIterable {
    case pending, running, done, rejected, failed
}

/// A run's state, stored as checked text (`run.status`; never rename a raw value).
public enum RunStatus: String, Codable, Sendable, CaseIterable {
    case running, finished, interrupted
}

extension ItemState: DatabaseValueConvertible {}
extension RunStatus: DatabaseValueConvertible {}
extension StageID: DatabaseValueConvertible {}
