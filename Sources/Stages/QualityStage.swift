import Foundation
import PipelineCore

/// Stage 7 `quality`: image quality of every piece stage 6 kept, from its first, middle and last
/// frame (the reference's sampling); keep a piece whose mean score passes the threshold.
///
/// Reference: LatentSync `preprocess/filter_visual_quality.py` (HyperIQA, keep ≥ 40; needs weights).
/// The default here is BRISQUE from OpenCV contrib with Debian's LIVE model, lower is better, keep
/// ≤ `quality.max_brisque`. Scores are stored apart from the decision, as in stage 6.
public struct QualityStage: Stage {
    public let id = "quality"
    public let unit = WorkUnit.clip
    public let configuration: PipelineConfiguration.Quality

    public init(configuration: PipelineConfiguration) {
        self.configuration = configuration.quality
    }

    public var fingerprint: String { Fingerprint.of("v1", Fingerprint.canonicalJSON(configuration)) }

    /// What changes the scores (not the threshold).
    var scoreFingerprint: String {
        Fingerprint.of("brisque-v1", configuration.method, configuration.brisqueModel, configuration.brisqueRange)
    }

    /// First, middle (`count / 2`, as the reference) and last frame.
    public static func sampledFrames(count: Int) -> [Int] { Array(Set([0, count / 2, count - 1])).sorted() }

    /// BRISQUE of the sampled frames of a clip of `frames` frames.
    public static func scores(of clip: String, frames: Int, scorer: BrisqueScorer) throws -> [Double] {
        let indices = sampledFrames(count: frames)
        let images = try ClipFrames.read(clip, indices: indices)
        return try indices.map { try scorer.score(images[$0]!) }
    }

    public func run(_ item: WorkItem, in context: StageContext) throws -> StageOutcome {
        let pieces = try ScoredPieces.kept(by: "sync", item: item, in: context)
        let scoreKey = Fingerprint.of(id, scoreFingerprint, ScoredPieces.alignedFingerprint(context))
        let earlier = try ScoredPieces.earlier(stage: id, item: item, scoreKey: scoreKey, in: context)
        var measured = 0
        var scorer: BrisqueScorer?
        var result: [CuratedPiece] = []
        for var piece in pieces {
            if let stored = earlier[piece.video], let quality = stored.quality {
                piece.quality = quality
                piece.qualityFrames = stored.qualityFrames
            } else {
                if scorer == nil { scorer = try BrisqueScorer(model: configuration.brisqueModel, range: configuration.brisqueRange) }
                let scores = try Self.scores(of: context.outputDirectory.appendingPathComponent(piece.video).path, frames: piece.frames.count, scorer: scorer!)
                piece.qualityFrames = scores
                piece.quality = scores.reduce(0, +) / Double(scores.count)
                measured += 1
            }
            let quality = piece.quality!
            if quality <= configuration.maxBrisque {
                piece.kept = true
                piece.reason = nil
            } else {
                piece.kept = false
                piece.reason = String(format: "frames %d–%d: BRISQUE %.1f above %.1f (lower is better)",
                                      piece.frames.lowerBound, piece.frames.upperBound - 1, quality, configuration.maxBrisque)
            }
            result.append(piece)
        }
        let metrics = metricsJSON(ScoredPieces(scoreKey: scoreKey, measured: measured, pieces: result))
        if let first = result.first(where: \.kept) { return .done(metrics: metrics, artifact: first.video, handOn: HandOn()) }
        let reason = result.isEmpty ? "no synced piece to score" : result.compactMap(\.reason).joined(separator: "; ")
        return .rejected(reason: reason, metrics: metrics, handOn: HandOn())
    }
}
