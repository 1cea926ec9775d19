import Foundation
import PipelineCore

/// Stage 7 `quality`: image quality of every piece stage 6 kept, from its first, middle and last
/// frame (the reference's sampling); keep a piece whose mean score passes the threshold.
///
/// Reference: LatentSync `preprocess/filter_visual_quality.py` (HyperIQA, keep ≥ 40; needs weights).
/// The default here is BRISQUE from OpenCV contrib with Debian's LIVE model, lower is better, keep
/// ≤ `quality.max_brisque`. Scores are stored apart from the decision, as in stage 6.
public struct QualityStage: Stage {
    public let stageID = StageID.quality
    public let unit = WorkUnit.clip
    public let configuration: PipelineConfiguration.Quality
    public let device: String

    public init(configuration: PipelineConfiguration) {
        self.configuration = configuration.quality
        self.device = configuration.inference.device
    }

    public var fingerprint: String { Fingerprint.of("v1", Fingerprint.canonicalJSON(configuration)) }

    public var usesDevice: Bool { configuration.method == "hyperiqa" }

    /// What changes the scores (not the threshold).
    var scoreFingerprint: String {
        switch configuration.method {
        case "hyperiqa": Fingerprint.of("hyperiqa-v1", ModelStore.fingerprint(ofWeights: configuration.hyperiqaWeights))
        default: Fingerprint.of("brisque-v1", configuration.method, configuration.brisqueModel, configuration.brisqueRange)
        }
    }

    /// First, middle (`count / 2`, as the reference) and last frame.
    public static func sampledFrames(count: Int) -> [Int] { Array(Set([0, count / 2, count - 1])).sorted() }

    /// BRISQUE of the sampled frames of a clip of `frames` frames.
    public static func scores(of clip: String, frames: Int, scorer: BrisqueScorer) throws -> [Double] {
        let indices = sampledFrames(count: frames)
        let images = try ClipFrames.read(clip, indices: indices)
        return try indices.map { try scorer.score(images[$0]!) }
    }

    /// The configured scorer: the sampled frames' scores of one clip.
    private func scorer(device: String) throws -> (String, Int) throws -> [Double] {
        switch configuration.method {
        case "hyperiqa":
            let model = try HyperIQAQuality(weights: configuration.hyperiqaWeights, device: device)
            return { clip, frames in
                let indices = Self.sampledFrames(count: frames)
                let images = try ClipFrames.read(clip, indices: indices)
                return try model.scores(of: indices.map { images[$0]! })
            }
        default:
            let brisque = try BrisqueScorer(model: configuration.brisqueModel, range: configuration.brisqueRange)
            return { clip, frames in try Self.scores(of: clip, frames: frames, scorer: brisque) }
        }
    }

    /// Whether a mean score passes, and why not.
    private func verdict(_ quality: Double) -> String? {
        switch configuration.method {
        case "hyperiqa":
            quality >= configuration.minHyperiqa ? nil : String(format: "hyperIQA %.1f below %.1f (higher is better)", quality, configuration.minHyperiqa)
        default:
            quality <= configuration.maxBrisque ? nil : String(format: "BRISQUE %.1f above %.1f (lower is better)", quality, configuration.maxBrisque)
        }
    }

    public func run(_ item: WorkItem, in context: StageContext) throws -> StageOutcome {
        let pieces = try context.pieces(keptBy: .sync, for: item)
        let scoreKey = Fingerprint.of(id, scoreFingerprint, ScoredPieces.alignedFingerprint(context))
        let earlier = try context.store.earlierQualityScores(pieces: pieces.map(\.pieceId), scoreKey: scoreKey)
        var measured = 0
        var score: ((String, Int) throws -> [Double])?
        var result: [CuratedPiece] = []
        for var piece in pieces {
            if let stored = earlier[piece.pieceId] {
                piece.quality = stored.score
                piece.qualityFrames = try stored.frameScoreValues()
            } else {
                if score == nil { score = try scorer(device: context.device ?? device) }
                let scores = try score!(context.outputDirectory.appendingPathComponent(piece.video).path, piece.frames.count)
                piece.qualityFrames = scores
                piece.quality = scores.reduce(0, +) / Double(scores.count)
                measured += 1
            }
            if let why = verdict(piece.quality!) {
                piece.kept = false
                piece.reason = "\(piece.span): \(why)"
            } else {
                piece.kept = true
                piece.reason = nil
            }
            result.append(piece)
        }
        let metrics = metricsJSON(ScoredPieces(scoreKey: scoreKey, measured: measured, pieces: result))
        let handOn = HandOn(qualityScores: result.map { piece in
            QualityScoreRecord(pieceId: piece.pieceId, scoreKey: scoreKey, score: piece.quality!, frameScores: piece.qualityFrames ?? [],
                               kept: piece.kept, reason: piece.reason)
        })
        if let first = result.first(where: \.kept) { return .done(metrics: metrics, artifact: first.video, handOn: handOn) }
        let reason = result.isEmpty ? "no synced piece to score" : result.compactMap(\.reason).joined(separator: "; ")
        return .rejected(reason: reason, metrics: metrics, handOn: handOn)
    }
}
