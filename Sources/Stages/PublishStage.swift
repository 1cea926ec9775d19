import Foundation
import PipelineCore

/// Stage 8 `publish`: every piece that passed sync and quality becomes
/// `high_visual_quality/<name>.mp4`: the aligned video stream copied as it is, with the source's
/// audio for the same frames moved by the measured offset, sample-exactly (a positive offset, audio
/// leading, is fixed by delaying the audio). Where the shifted window reaches past the source's
/// timeline the audio is padded with silence; otherwise it is real audio from before or after the
/// piece, not padding. The dataset's `fileslist.txt` and `manifest.jsonl` are rebuilt from these
/// results after each run (`DatasetIndex`).
///
/// Reference: `ffmpeg -i IN -itsoffset offset/25 -i IN -map 0:v -map 1:a -c copy` (stream copy with
/// shifted audio timestamps, leaving a gap at one end and the audio running past the other).
public struct PublishStage: Stage {
    public let stageID = StageID.publish
    public let unit = WorkUnit.clip
    public let normalize: PipelineConfiguration.Normalize
    public static let folder = "high_visual_quality"

    public init(configuration: PipelineConfiguration) { normalize = configuration.normalize }

    public var fingerprint: String { Fingerprint.of("v1") }

    /// `aligned/x/y_shot_001_002.mp4` → `high_visual_quality/x/y_shot_001_002.mp4`.
    public static func publishedPath(ofAligned video: String) -> String {
        let parts = video.split(separator: "/", maxSplits: 1)
        return folder + "/" + (parts.count == 2 ? String(parts[1]) : video)
    }

    public func run(_ item: WorkItem, in context: StageContext) throws -> StageOutcome {
        let pieces = try context.pieces(keptBy: .quality, for: item)
        let reader = try context.normalizedReader(for: item, stage: id, normalize: normalize, decoderThreads: 1)
        let perFrame = normalize.sampleRate / normalize.fps
        var result: [CuratedPiece] = []
        for var piece in pieces {
            let offset = piece.sync?.offset ?? 0
            let audio = try Self.shiftedAudio(reader, frames: piece.frames, offset: offset, samplesPerFrame: perFrame)
            let relative = Self.publishedPath(ofAligned: piece.video)
            let pending = try context.outputs.prepare(relative)
            do {
                try AudioReplacement.write(video: context.outputDirectory.appendingPathComponent(piece.video).path, audio: audio,
                                           sampleRate: normalize.sampleRate, to: pending.temporaryPath)
                try pending.commit(as: context.outputDirectory.appendingPathComponent(relative))
            } catch {
                pending.discard()
                throw error
            }
            let sidecar = try AlignedLandmarks(serialized: Data(contentsOf: context.outputDirectory.appendingPathComponent(piece.landmarks)))
            piece.faceSize = sidecar.landmarks.map { hypot($0[36].x - $0[45].x, $0[36].y - $0[45].y) }.reduce(0, +) / Double(max(1, sidecar.landmarks.count))
            piece.published = relative
            result.append(piece)
        }
        let metrics = metricsJSON(ScoredPieces(scoreKey: "", measured: 0, pieces: result))
        guard let first = result.first else { return .rejected(reason: "no piece passed quality", metrics: metrics, handOn: HandOn()) }
        let handOn = HandOn(publications: result.map { piece in
            PublishedClipRecord(pieceId: piece.pieceId, path: piece.published!, offset: piece.sync?.offset ?? 0, faceSize: piece.faceSize!)
        })
        return .done(metrics: metrics, artifact: first.published, handOn: handOn)
    }

    /// The audio under `frames` delayed by `offset` frames: sample s of the result is timeline
    /// sample (start − offset)·perFrame + s, silence where that falls outside the timeline.
    static func shiftedAudio(_ reader: NormalizedReader, frames: Range<Int>, offset: Int, samplesPerFrame perFrame: Int) throws -> [Float] {
        let wanted = (frames.lowerBound - offset)..<(frames.upperBound - offset)
        let available = wanted.clamped(to: 0..<reader.frameCount)
        var audio = [Float](repeating: 0, count: frames.count * perFrame)
        guard !available.isEmpty else { return audio }
        let samples = try reader.audioSamples(frames: available)
        let at = (available.lowerBound - wanted.lowerBound) * perFrame
        audio.replaceSubrange(at..<(at + samples.count), with: samples)
        return audio
    }
}
