import Foundation
import PipelineCore

/// One aligned piece of a clip as it moves through stages 6–8: each stage copies the pieces the
/// previous one kept and adds its own scores and verdict, so the last stage's result is the whole
/// story of every piece (and `manifest.jsonl` is written from it).
public struct CuratedPiece: Codable, Sendable, Equatable {
    /// Frames on the source's 25 fps timeline.
    public var frames: Range<Int>
    /// The aligned clip and its landmark sidecar, relative to the output directory.
    public var video: String
    public var landmarks: String
    public var sync: SyncMeasurement?
    /// Mean quality score of the sampled frames, with the per-frame scores.
    public var quality: Double?
    public var qualityFrames: [Double]?
    public var kept = true
    public var reason: String?
    /// The published clip (stage 8), relative to the output directory.
    public var published: String?
    /// Mean outer eye-corner distance in source pixels (how large the face was).
    public var faceSize: Double?

    public init(frames: Range<Int>, video: String, landmarks: String) {
        self.frames = frames; self.video = video; self.landmarks = landmarks
    }
}

/// What stages 6 and 7 record: the pieces, and under which key their scores were measured.
struct ScoredPieces: Codable {
    /// Hash of the method, its settings and everything upstream: equal keys mean equal scores.
    var scoreKey: String
    /// Pieces measured in this execution (0 when every score came from an earlier decision).
    var measured: Int
    var pieces: [CuratedPiece]

    static func decode(_ metrics: String?) -> ScoredPieces? {
        metrics.flatMap { try? JSONDecoder().decode(ScoredPieces.self, from: Data($0.utf8)) }
    }

    /// What the scored files depend on: the aligned clips, i.e. everything up to stage 5. Other
    /// stages' thresholds in between leave the scores valid.
    static func alignedFingerprint(_ context: StageContext) -> String {
        context.chainFingerprints["align"] ?? context.upstreamFingerprint
    }

    /// Pieces a stage received from the stage before it: the kept ones of its current result.
    static func kept(by stage: String, item: WorkItem, in context: StageContext) throws -> [CuratedPiece] {
        guard let row = try context.store.currentResult(stage: stage, itemKey: item.itemKey), row.state == ItemState.done.rawValue else {
            throw StageError(stage: stage, item: item.name, message: "no done \(stage) result to build on")
        }
        if stage == "align" {
            return try AlignStage.pieces(of: row).compactMap { p in
                guard let video = p.video, let landmarks = p.landmarks else { return nil }
                return CuratedPiece(frames: p.frames, video: video, landmarks: landmarks)
            }
        }
        guard let scored = decode(row.metrics) else { throw StageError(stage: stage, item: item.name, message: "unreadable \(stage) result") }
        return scored.pieces.filter(\.kept)
    }

    /// Scores measured earlier for this item under `scoreKey`, by aligned video path: a decision
    /// under other thresholds (current or superseded) already paid for them.
    static func earlier(stage: String, item: WorkItem, scoreKey: String, in context: StageContext) throws -> [String: CuratedPiece] {
        var found: [String: CuratedPiece] = [:]
        for row in try context.store.history(stage: stage, itemKey: item.itemKey) {
            guard let scored = decode(row.metrics), scored.scoreKey == scoreKey else { continue }
            for piece in scored.pieces where found[piece.video] == nil { found[piece.video] = piece }
        }
        return found
    }
}
