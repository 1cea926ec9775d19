import Foundation
import PipelineCore

/// One aligned piece of a clip as it moves through stages 6–8: the piece stage 5 recorded
/// (`AlignedPieceRecord`), with the scores and verdicts later stages recorded for it
/// (`SyncScoreRecord`, `QualityScoreRecord`, `PublishedClipRecord`). Stages read it from those rows
/// (`kept(by:)`) and record theirs as rows; the same value, encoded, is their metrics JSON for
/// people to read, which nothing reads back.
public struct CuratedPiece: Codable, Sendable, Equatable {
    /// The `alignedPiece` row.
    public var pieceId: Int64
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

    public init(_ piece: AlignedPieceRecord) {
        pieceId = piece.id ?? 0; frames = piece.frames; video = piece.video; landmarks = piece.landmarks
    }

    public var span: String { "frames \(frames.lowerBound)–\(frames.upperBound - 1)" }

    /// The pieces `stage` (align, sync or quality) handed on for `item`: those its current done
    /// result kept, in order, with the sync and quality scores recorded for them so far.
    public static func kept(by stage: StageID, itemKey: String, name: String, store: any Ledger) throws -> [CuratedPiece] {
        func current(_ stage: StageID) throws -> StageResultRecord {
            guard let row = try store.currentResult(stage: stage.rawValue, itemKey: itemKey), row.state == ItemState.done else {
                throw StageError(stage: stage.rawValue, item: name, message: "no done \(stage.rawValue) result to build on")
            }
            return row
        }
        func pieces(_ ids: [Int64]) throws -> [CuratedPiece] {
            let found = try store.alignedPieces(ids: ids)
            return try ids.map { id in
                guard let piece = found[id] else { throw StageError(stage: stage.rawValue, item: name, message: "aligned piece \(id) is not in the database") }
                return CuratedPiece(piece)
            }
        }
        switch stage {
        case .align:
            return try store.alignedPieces(result: current(.align).id!).map(CuratedPiece.init)
        case .sync:
            let scores = try store.syncScores(result: current(.sync).id!).filter(\.kept)
            return try zip(pieces(scores.map(\.pieceId)), scores).map { piece, score in
                var piece = piece
                piece.sync = try score.measurement()
                return piece
            }
        case .quality:
            let scores = try store.qualityScores(result: current(.quality).id!).filter(\.kept)
            let sync = Dictionary(uniqueKeysWithValues: try store.syncScores(result: current(.sync).id!).map { ($0.pieceId, $0) })
            return try zip(pieces(scores.map(\.pieceId)), scores).map { piece, score in
                var piece = piece
                piece.quality = score.score
                piece.qualityFrames = try score.frameScoreValues()
                piece.sync = try sync[piece.pieceId]?.measurement()
                return piece
            }
        default:
            throw StageError(stage: stage.rawValue, item: name, message: "\(stage.rawValue) hands on no pieces")
        }
    }
}

extension SyncScoreRecord {
    /// The stored measurement, nil when the piece could not be measured.
    func measurement() throws -> SyncMeasurement? {
        guard let offset, let confidence, let curve = try curveValues() else { return nil }
        return SyncMeasurement(offset: offset, confidence: confidence, scores: curve)
    }
}

/// The metrics JSON of stages 6–8 (diagnostics): the pieces, and under which key their scores were
/// measured.
struct ScoredPieces: Codable {
    /// Hash of the method, its settings and everything upstream: equal keys mean equal scores.
    var scoreKey: String
    /// Pieces measured in this execution (0 when every score came from an earlier decision).
    var measured: Int
    var pieces: [CuratedPiece]

    /// What the scored files depend on: the aligned clips, i.e. everything up to stage 5. Other
    /// stages' thresholds in between leave the scores valid.
    static func alignedFingerprint(_ context: StageContext) -> String {
        context.chainFingerprints["align"] ?? context.upstreamFingerprint
    }
}

extension StageContext {
    /// The pieces `stage` handed on for `item` (`CuratedPiece.kept`).
    func pieces(keptBy stage: StageID, for item: WorkItem) throws -> [CuratedPiece] {
        try CuratedPiece.kept(by: stage, itemKey: item.itemKey, name: item.name, store: store)
    }
}
