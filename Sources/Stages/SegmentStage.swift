import Foundation
import PipelineCore

/// Stage 4 `segment`: every scene becomes frame-exact clips of `min_seconds`…`max_seconds`.
///
/// Reference: bytedance/LatentSync@a229c39 preprocess/segment_videos.py — `ffmpeg -c:v copy -f
/// segment -segment_time 5`, which can only cut on keyframes and leaves pieces under 5 s (and a
/// tail of a few frames per shot). Here pieces are cut on the exact frames of the 25 fps timeline
/// by `SegmentPlan`; a scene shorter than the minimum is reported with its length. By default only
/// the clip rows are stored and stage 5 reads the frames through `NormalizedReader`;
/// `segment.materialize = true` also writes `segmented/<name>_shot_NNN_MMM.mp4` (the reference's
/// names: shots from 001, segments from 000).
public struct SegmentStage: Stage {
    public let stageID = StageID.segment
    public let unit = WorkUnit.source
    public let configuration: PipelineConfiguration.Segment
    public let scenesStage: SceneStage
    public let normalize: PipelineConfiguration.Normalize

    public init(configuration: PipelineConfiguration) {
        self.configuration = configuration.segment
        self.scenesStage = SceneStage(configuration: configuration)
        self.normalize = configuration.normalize
    }

    public var fingerprint: String { Fingerprint.of("v1", Fingerprint.canonicalJSON(configuration), String(normalize.fps)) }
    /// Later stages see the clips, not whether copies of them were written.
    public var outputFingerprint: String { Fingerprint.of("v1", Fingerprint.canonicalJSON(plan)) }

    public var plan: SegmentPlan {
        let fps = Double(normalize.fps)
        return SegmentPlan(minFrames: Int((configuration.minSeconds * fps).rounded(.up)),
                           maxFrames: Int((configuration.maxSeconds * fps).rounded(.down)),
                           targetFrames: Int((configuration.targetSeconds * fps).rounded()))
    }

    struct Metrics: Codable {
        var clips: Int
        var clipSeconds: Double
        var shortScenes: [ShortScene]
        var droppedFrames: Int
        var materialized: [String]?
    }
    struct ShortScene: Codable { var scene: Int; var frames: Range<Int>; var seconds: Double }

    public func run(_ item: WorkItem, in context: StageContext) throws -> StageOutcome {
        guard let sceneList = try SceneListAnalysis.load(sourceId: item.source.id!, stage: scenesStage, from: context.store) else {
            throw StageError(stage: id, item: item.source.relativePath, message: "no scene list was recorded by stage scenes; rerun it")
        }
        let fps = Double(normalize.fps)
        let plan = self.plan
        var clips: [ClipRecord] = []
        var short: [ShortScene] = []
        var dropped = 0
        for (sceneIndex, scene) in sceneList.enumerated() {
            let pieces = plan.pieces(of: scene)
            if pieces.isEmpty { short.append(ShortScene(scene: sceneIndex, frames: scene, seconds: Double(scene.count) / fps)) }
            dropped += scene.count - pieces.reduce(0) { $0 + $1.count }
            clips += pieces.enumerated().map { ClipRecord(sourceId: item.source.id!, sceneIndex: sceneIndex, segmentIndex: $0.offset,
                                                         startFrame: $0.element.lowerBound, endFrame: $0.element.upperBound) }
        }
        var metrics = Metrics(clips: clips.count, clipSeconds: Double(clips.reduce(0) { $0 + $1.endFrame - $1.startFrame }) / fps,
                              shortScenes: short, droppedFrames: dropped)
        guard !clips.isEmpty else {
            let longest = sceneList.map(\.count).max() ?? 0
            let reason = String(format: "no scene lasts %.1f s: the longest of %d is %.2f s (frames %@)", configuration.minSeconds, sceneList.count,
                                Double(longest) / fps, sceneList.first { $0.count == longest }.map { "\($0.lowerBound)–\($0.upperBound - 1)" } ?? "-")
            return .rejected(reason: reason, metrics: metricsJSON(metrics), handOn: HandOn(clips: []))
        }
        if configuration.materialize {
            metrics.materialized = try materialize(clips, item: item, context: context)
        }
        return .done(metrics: metricsJSON(metrics), artifact: nil, handOn: HandOn(clips: clips, sideOutputs: metrics.materialized ?? []))
    }

    /// `segmented/<dir>/<name>_shot_NNN_MMM.mp4`, as the reference names its pieces.
    public static func materializedPath(stem: String, scene: Int, segment: Int) -> String {
        clipPath(folder: "segmented", stem: stem, scene: scene, segment: segment)
    }

    /// `<folder>/<stem>_shot_NNN_MMM[suffix].<ext>`: the reference's clip names (shots from 001,
    /// segments from 000), mirroring the source's sub-folders, for every stage that writes clips.
    /// `stem` is the source's `SourceRecord.namingStem` (`<dir>/<name>`, unique per source).
    public static func clipPath(folder: String, stem: String, scene: Int, segment: Int, suffix: String = "", extension ext: String = "mp4") -> String {
        folder + "/" + stem + String(format: "_shot_%03d_%03d", scene + 1, segment) + suffix + "." + ext
    }

    private func materialize(_ clips: [ClipRecord], item: WorkItem, context: StageContext) throws -> [String] {
        let reader = try context.normalizedReader(for: item, stage: id, normalize: normalize)
        var written: [String] = []
        for clip in clips {
            let relative = Self.materializedPath(stem: item.source.namingStem, scene: clip.sceneIndex, segment: clip.segmentIndex)
            try context.outputs.publish(relative) { temporary in
                try reader.copy(frames: clip.startFrame..<clip.endFrame, to: temporary,
                                encoding: CopyEncoding(crf: configuration.crf, threads: context.decoderThreads))
            }
            written.append(relative)
        }
        return written
    }
}

/// How a scene is cut into clips, in frames.
///
/// Rule: pieces of `targetFrames`, the remainder folded into the last piece; when that would make
/// the last piece longer than `maxFrames`, the scene is instead split into the number of equal
/// pieces closest to the target that keeps every piece within range. Scenes shorter than
/// `minFrames` give nothing. With `maxFrames ≥ 2·minFrames − 1` (the default 125/250) pieces
/// always tile the scene exactly; for narrower ranges a tail that fits no piece is dropped.
public struct SegmentPlan: Sendable, Equatable, Codable {
    public var minFrames: Int
    public var maxFrames: Int
    public var targetFrames: Int

    public init(minFrames: Int, maxFrames: Int, targetFrames: Int) {
        precondition(0 < minFrames && minFrames <= targetFrames && targetFrames <= maxFrames, "need 0 < min ≤ target ≤ max")
        self.minFrames = minFrames
        self.maxFrames = maxFrames
        self.targetFrames = targetFrames
    }

    public func pieces(of scene: Range<Int>) -> [Range<Int>] {
        let length = scene.count
        guard length >= minFrames else { return [] }
        let whole = length / targetFrames
        let remainder = length - whole * targetFrames
        var lengths: [Int]
        if whole >= 1 && targetFrames + remainder <= maxFrames {
            lengths = Array(repeating: targetFrames, count: whole - 1) + [targetFrames + remainder]
        } else {
            // Equal pieces: n must satisfy length/max ≤ n ≤ length/min.
            let fewest = (length + maxFrames - 1) / maxFrames
            let most = length / minFrames
            if fewest <= most {
                let n = min(max(Int((Double(length) / Double(targetFrames)).rounded()), fewest), most)
                lengths = (0..<n).map { length / n + ($0 < length % n ? 1 : 0) }
            } else {
                // No count of in-range pieces covers the scene: full-length pieces, tail dropped.
                lengths = Array(repeating: maxFrames, count: length / maxFrames)
                if length % maxFrames >= minFrames { lengths.append(length % maxFrames) }
            }
        }
        var start = scene.lowerBound
        return lengths.map { n in defer { start += n }; return start..<(start + n) }
    }
}
