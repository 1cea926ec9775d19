import Foundation
import GRDB

/// The stages of the pipeline, as `stageResult.stage` stores them (a trigger refuses any other
/// text). Never rename a case's raw value: it is in every user's database.
public enum StageID: String, Codable, Sendable, CaseIterable {
    case broken, normalize, scenes, segment, align, sync, quality, publish
}

/// One face run that stage 5 kept: frames `startFrame..<endFrame` of the source's 25 fps timeline,
/// its aligned clip and landmark sidecar (paths relative to the output directory). Numbered from 0
/// within its `align` result; sync, quality and publish refer to it by `id`.
public struct AlignedPieceRecord: Codable, Sendable, Equatable, FetchableRecord, MutablePersistableRecord {
    public static let databaseTableName = "alignedPiece"
    public var id: Int64?
    public var resultId: Int64
    public var ordinal: Int
    public var startFrame: Int
    public var endFrame: Int
    public var video: String
    public var landmarks: String

    public init(id: Int64? = nil, resultId: Int64 = 0, ordinal: Int, frames: Range<Int>, video: String, landmarks: String) {
        self.id = id; self.resultId = resultId; self.ordinal = ordinal
        self.startFrame = frames.lowerBound; self.endFrame = frames.upperBound; self.video = video; self.landmarks = landmarks
    }

    public var frames: Range<Int> { startFrame..<endFrame }
    /// The same piece: same frames and files (a row id and result aside).
    func describesSamePiece(as other: AlignedPieceRecord) -> Bool {
        ordinal == other.ordinal && frames == other.frames && video == other.video && landmarks == other.landmarks
    }
    public mutating func didInsert(_ inserted: InsertionSuccess) { id = inserted.rowID }
}

/// What a `sync` result measured on one aligned piece, and its verdict. `offset`, `confidence` and
/// `curve` (the method's score at each candidate offset, a JSON array) are nil when the piece could
/// not be measured; `reason` then says why.
public struct SyncScoreRecord: Codable, Sendable, Equatable, FetchableRecord, PersistableRecord {
    public static let databaseTableName = "syncScore"
    public var resultId: Int64
    public var pieceId: Int64
    /// Hash of the method, its settings and everything upstream: equal keys mean equal scores.
    public var scoreKey: String
    public var offset: Int?
    public var confidence: Double?
    public var curve: String?
    public var kept: Bool
    public var reason: String?

    public init(resultId: Int64 = 0, pieceId: Int64, scoreKey: String, offset: Int?, confidence: Double?, curve: [Double]?, kept: Bool, reason: String?) {
        self.resultId = resultId; self.pieceId = pieceId; self.scoreKey = scoreKey; self.offset = offset; self.confidence = confidence
        self.curve = curve.map(ScoreList.text); self.kept = kept; self.reason = reason
    }

    /// The per-offset scores, decoded strictly (a stored row that does not decode is an error).
    public func curveValues() throws -> [Double]? {
        try curve.map(ScoreList.values)
    }
}

/// What a `quality` result measured on one piece (the mean of the sampled frames' scores, and those
/// scores as a JSON array), and its verdict.
public struct QualityScoreRecord: Codable, Sendable, Equatable, FetchableRecord, PersistableRecord {
    public static let databaseTableName = "qualityScore"
    public var resultId: Int64
    public var pieceId: Int64
    public var scoreKey: String
    public var score: Double
    public var frameScores: String
    public var kept: Bool
    public var reason: String?

    public init(resultId: Int64 = 0, pieceId: Int64, scoreKey: String, score: Double, frameScores: [Double], kept: Bool, reason: String?) {
        self.resultId = resultId; self.pieceId = pieceId; self.scoreKey = scoreKey; self.score = score
        self.frameScores = ScoreList.text(frameScores); self.kept = kept; self.reason = reason
    }

    public func frameScoreValues() throws -> [Double] { try ScoreList.values(frameScores) }
}

/// A clip stage 8 published from one piece: its path (relative to the output directory), the audio
/// offset it applied (frames; + = audio led) and the face's size (mean outer eye-corner distance in
/// source pixels).
public struct PublishedClipRecord: Codable, Sendable, Equatable, FetchableRecord, PersistableRecord {
    public static let databaseTableName = "publishedClip"
    public var resultId: Int64
    public var pieceId: Int64
    public var path: String
    public var offset: Int
    public var faceSize: Double

    public init(resultId: Int64 = 0, pieceId: Int64, path: String, offset: Int, faceSize: Double) {
        self.resultId = resultId; self.pieceId = pieceId; self.path = path; self.offset = offset; self.faceSize = faceSize
    }
}

/// A list of scores as the hand-off tables keep it: a JSON array of numbers, read back strictly (a
/// stored list that does not decode is an error, never an empty list).
enum ScoreList {
    static func text(_ values: [Double]) -> String {
        String(decoding: (try? JSONEncoder().encode(values)) ?? Data("[]".utf8), as: UTF8.self)
    }
    static func values(_ text: String) throws -> [Double] { try JSONDecoder().decode([Double].self, from: Data(text.utf8)) }
}
