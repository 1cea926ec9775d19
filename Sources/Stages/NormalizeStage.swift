import Foundation
import PipelineCore

/// Stage 2 `normalize`: 25 fps video and 16 kHz mono audio, planned rather than re-encoded.
///
/// Reference: bytedance/LatentSync@a229c39 preprocess/resample_fps_hz.py — `ffmpeg -r 25 -ar 16000`
/// re-encodes every source at full resolution. Here the frame map recorded by stage 1's scan is the
/// plan (the frames `ffmpeg -vf fps=25` selects), and later stages read through `NormalizedReader`.
/// `normalize.materialize = true` also writes `resampled/<relative path>.mp4` for users who want
/// files (H.264 + AAC, 16 kHz mono).
public struct NormalizeStage: Stage {
    public let stageID = StageID.normalize
    public let unit = WorkUnit.source
    public let configuration: PipelineConfiguration.Normalize

    public init(configuration: PipelineConfiguration) { self.configuration = configuration.normalize }

    public var fingerprint: String { Fingerprint.of("v1", Fingerprint.canonicalJSON(configuration)) }
    /// Later stages see the timeline, not whether a copy of it was written.
    public var outputFingerprint: String { Fingerprint.of("v1", String(configuration.fps), String(configuration.sampleRate)) }
    var rate: Rational { Rational(Int64(configuration.fps), 1) }

    struct Metrics: Codable {
        var sourceFrames: Int
        var outputFrames: Int
        var droppedSourceFrames: Int
        var repeatedFrames: Int
        var startSeconds: Double
        var durationSeconds: Double
        var materialized: String?
    }

    /// Where the materialised copy of a source goes, relative to the output directory.
    /// (A name too long for the file system is cut and hashed, `OutputNaming.fitted`.)
    public static func materializedPath(for relativePath: String) -> String {
        let url = URL(fileURLWithPath: relativePath)
        let base = url.pathExtension.lowercased() == "mp4" ? relativePath : relativePath + ".mp4"
        let slash = base.lastIndex(of: "/")
        let dir = slash.map { String(base[...$0]) } ?? ""
        let name = slash.map { String(base[base.index(after: $0)...]) } ?? base
        return "resampled/" + dir + (name.utf8.count > 240 ? OutputNaming.fitted(name, maxBytes: 236) + ".mp4" : name)
    }

    public func run(_ item: WorkItem, in context: StageContext) throws -> StageOutcome {
        guard let map = try FrameMapAnalysis.load(sourceId: item.source.id!, rate: rate, from: context.store) else {
            throw StageError(stage: id, item: item.source.relativePath, message: "no frame map at \(rate) fps was recorded by stage broken; rerun it")
        }
        let outputFrames = map.outputFrameCount
        var metrics = Metrics(sourceFrames: map.sourcePts.count, outputFrames: outputFrames,
                              droppedSourceFrames: map.repeats.filter { $0 == 0 }.count,
                              repeatedFrames: map.repeats.reduce(0) { $0 + max(0, Int($1) - 1) },
                              startSeconds: map.startSeconds, durationSeconds: Double(outputFrames) / rate.seconds)
        guard outputFrames > 0 else { return .rejected("no frame lands on the \(rate) fps timeline", metrics: metricsJSON(metrics)) }
        if configuration.materialize {
            let relative = Self.materializedPath(for: item.source.relativePath)
            let reader = NormalizedReader(path: item.sourcePath, frameMap: map, sampleRate: configuration.sampleRate, decoderThreads: context.decoderThreads)
            try context.outputs.publish(relative) { temporary in
                try reader.copy(to: temporary, encoding: CopyEncoding(crf: configuration.crf, preset: configuration.preset, threads: context.decoderThreads))
            }
            metrics.materialized = relative
            return .done(metrics: metricsJSON(metrics), artifact: relative, handOn: HandOn(sideOutputs: [relative]))
        }
        return .done(metrics: metricsJSON(metrics))
    }
}
