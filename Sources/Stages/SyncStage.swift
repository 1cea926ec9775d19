import Foundation
import PipelineCore

/// Stage 6 `sync`: the audio/video offset and a confidence for every aligned piece of a clip; keep
/// a piece when the confidence reaches `sync.min_confidence` and |offset| ≤ `sync.max_offset`.
///
/// Reference: LatentSync `preprocess/sync_av.py` (SyncNet v2 on re-detected face crops; keep when
/// conf ≥ 3 and |offset| ≤ 6; the audio of kept clips is shifted by the offset). Here the method is
/// pluggable (`SyncMethod`); the default `correlation` needs no weights. The offset is applied when
/// the clip is published (stage 8), sample-exactly from the source's audio.
///
/// Scores are kept apart from decisions: they are stored under a key of the method, its settings
/// and everything upstream, so changing a threshold re-decides from the stored scores.
public struct SyncStage: Stage {
    public let stageID = StageID.sync
    public let unit = WorkUnit.clip
    public let configuration: PipelineConfiguration.Sync
    public let normalize: PipelineConfiguration.Normalize
    public let device: String

    public init(configuration: PipelineConfiguration) {
        self.configuration = configuration.sync
        self.normalize = configuration.normalize
        self.device = configuration.inference.device
    }

    /// The configured method (the configuration reader only accepts known names); models load once per process.
    public static func method(_ c: PipelineConfiguration.Sync, device: String) throws -> any SyncMethod {
        switch c.method {
        case "correlation": CorrelationSync(search: c.searchFrames)
        case "syncnet_v2": try SyncNetV2Sync(weights: c.syncnetV2Weights, search: c.searchFrames, device: device)
        case "stable_syncnet": try StableSyncNetSync(weights: c.stableSyncnetWeights, search: c.searchFrames, stride: c.stableSyncnetStride, device: device)
        default: throw SyncMethodError.unknownMethod(c.method)
        }
    }

    public var fingerprint: String { Fingerprint.of("v1", Fingerprint.canonicalJSON(configuration)) }

    public var usesDevice: Bool { configuration.method != "correlation" }

    public func run(_ item: WorkItem, in context: StageContext) throws -> StageOutcome {
        let pieces = try context.pieces(keptBy: .align, for: item)
        let method = try Self.method(configuration, device: context.device ?? device)
        let scoreKey = Fingerprint.of(id, method.name, method.fingerprint, ScoredPieces.alignedFingerprint(context))
        let earlier = try context.store.earlierSyncScores(pieces: pieces.map(\.pieceId), scoreKey: scoreKey)
        var measured = 0
        var reader: NormalizedReader?
        var result: [CuratedPiece] = []
        for var piece in pieces {
            if let stored = try earlier[piece.pieceId]?.measurement() {
                piece.sync = stored
            } else {
                if reader == nil { reader = try context.normalizedReader(for: item, stage: id, normalize: normalize, decoderThreads: 1) }
                let sidecar = try AlignedLandmarks(serialized: Data(contentsOf: context.outputDirectory.appendingPathComponent(piece.landmarks)))
                guard sidecar.landmarks.count == piece.frames.count else {
                    throw StageError(stage: id, item: item.name, message: "\(piece.landmarks) has \(sidecar.landmarks.count) frames, expected \(piece.frames.count)")
                }
                let audio = try reader!.audioSamples(frames: piece.frames)
                do {
                    let clip = SyncClip(landmarks: sidecar.landmarks, matrices: sidecar.matrices, resolution: sidecar.resolution, audio: audio,
                                        video: context.outputDirectory.appendingPathComponent(piece.video).path)
                    piece.sync = try method.measure(clip)
                } catch let error as SyncMethodError {
                    piece.kept = false
                    piece.reason = "\(piece.span): \(error)"
                }
                measured += 1
            }
            if let m = piece.sync { decide(&piece, m, method: method.name) }
            result.append(piece)
        }
        let metrics = metricsJSON(ScoredPieces(scoreKey: scoreKey, measured: measured, pieces: result))
        let handOn = HandOn(syncScores: result.map { piece in
            SyncScoreRecord(pieceId: piece.pieceId, scoreKey: scoreKey, offset: piece.sync?.offset, confidence: piece.sync?.confidence,
                            curve: piece.sync?.scores, kept: piece.kept, reason: piece.reason)
        })
        if let first = result.first(where: \.kept) { return .done(metrics: metrics, artifact: first.video, handOn: handOn) }
        let reason = result.isEmpty ? "no aligned piece to measure" : result.compactMap(\.reason).joined(separator: "; ")
        return .rejected(reason: reason, metrics: metrics, handOn: handOn)
    }

    private func decide(_ piece: inout CuratedPiece, _ m: SyncMeasurement, method: String) {
        let span = piece.span
        if m.confidence < configuration.methodMinConfidence {
            piece.kept = false
            piece.reason = String(format: "%@: sync confidence %.3f below %.3f (%@)", span, m.confidence, configuration.methodMinConfidence, method)
        } else if abs(m.offset) > configuration.maxOffset {
            piece.kept = false
            piece.reason = "\(span): audio offset \(m.offset) frames, more than \(configuration.maxOffset)"
        } else {
            piece.kept = true
            piece.reason = nil
        }
    }
}
