import Foundation
import PipelineCore

/// Stage 3 `scenes`: shot boundaries on the 25 fps timeline, decided from stored content scores.
///
/// Reference: bytedance/LatentSync@a229c39 preprocess/detect_shot.py — `scenedetect -i IN
/// detect-adaptive --threshold 2 split-video`, which decodes the resampled file again and
/// re-encodes every shot. Here the scores come from stage 1's scan (the `ContentScorer`, exact to
/// PySceneDetect 0.6.1 on `golden/scenedetect`), so this stage only decides: a changed threshold
/// re-decides without decoding. Scenes are `[start, end)` frame ranges covering the whole
/// timeline (one scene when nothing cuts, PySceneDetect's `start_in_scene`); unlike 0.6.1 the last
/// scene keeps the last frame.
public struct SceneStage: Stage {
    public let stageID = StageID.scenes
    public let unit = WorkUnit.source
    public let configuration: PipelineConfiguration.Scenes

    public init(configuration: PipelineConfiguration) { self.configuration = configuration.scenes }

    public var fingerprint: String { Fingerprint.of("v1", Fingerprint.canonicalJSON(configuration)) }

    struct Metrics: Codable {
        var detector: String
        var cuts: [Int]
        var scenes: Int
        var frames: Int
    }

    public func run(_ item: WorkItem, in context: StageContext) throws -> StageOutcome {
        let downscale = configuration.downscale == 0 ? nil : configuration.downscale
        guard let scores = try ContentScoresAnalysis.load(sourceId: item.source.id!, downscale: downscale, from: context.store) else {
            throw StageError(stage: id, item: item.source.relativePath, message: "no content scores were recorded by stage broken's scan; rerun it")
        }
        var detector: any CutDetector = configuration.detector == "content"
            ? ContentCutDetector(threshold: configuration.threshold, minSceneLength: configuration.minSceneLen)
            : AdaptiveCutDetector(adaptiveThreshold: configuration.adaptiveThreshold, windowWidth: configuration.windowWidth,
                                  minContentValue: configuration.minContentVal, minSceneLength: configuration.minSceneLen)
        let cuts = detector.cuts(scores, weights: configuration.weights)
        let list = PipelineCore.scenes(cuts: cuts, frameCount: scores.count)
        guard !list.isEmpty else { return .rejected("no frame on the timeline to find scenes in") }
        let metrics = metricsJSON(Metrics(detector: configuration.detector, cuts: cuts, scenes: list.count, frames: scores.count))
        return .done(metrics: metrics, artifact: nil, handOn: HandOn(analyses: [SceneListAnalysis.record(list, stage: self)]))
    }
}

/// The stored scene list of a source (an `analysis` row of kind "scenes").
public enum SceneListAnalysis {
    public static let kind = "scenes"
    public static func record(_ scenes: [Range<Int>], stage: SceneStage) -> AnalysisRecord {
        AnalysisRecord(sourceId: 0, kind: kind, fingerprint: stage.fingerprint,
                       data: Data(metricsJSON(scenes.map { [$0.lowerBound, $0.upperBound] }).utf8))
    }
    public static func load(sourceId: Int64, stage: SceneStage, from store: any Ledger) throws -> [Range<Int>]? {
        guard let row = try store.analysis(sourceId: sourceId, kind: kind), row.fingerprint == stage.fingerprint else { return nil }
        return try JSONDecoder().decode([[Int]].self, from: row.data).map { $0[0]..<$0[1] }
    }
}
