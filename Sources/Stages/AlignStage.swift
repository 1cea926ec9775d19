import Foundation
import PipelineCore

/// Stage 5 `align`: every clip's face, aligned to the reference template at 256 or 512.
///
/// Reference: bytedance/LatentSync (releases up to 1.5) latentsync/utils/affine_transform.py with
/// 68-point landmarks (the older implementation; the current one uses InsightFace's 106 points and
/// a float16 GPU warp): three points (brows 17–21, 22–26, nose 27–35) → similarity to the template
/// (`ratio = R/256·2.8`) → `warpAffine` Lanczos-4 with grey 127 border into a 75×100·ratio crop →
/// Lanczos resize to R×R. Matrices, warp and resize are exact to `golden/affine`.
///
/// Differences from the reference: landmarks come from dlib (`FaceLandmarkDetector`, pluggable),
/// detected on a downscaled frame and tracked in between (`FaceTracker`); smoothing restarts for
/// every clip (the reference leaks it across clips); frames without an acceptable face split the
/// clip instead of aborting it, and face runs shorter than `segment.min_seconds` are rejected with
/// their frame range. Each kept run becomes `aligned/<name>_shot_NNN_MMM[_pK].mp4` (H.264 yuv420p,
/// 25 fps, the run's 16 kHz mono audio) with a `.landmarks` sidecar (`AlignedLandmarks`).
public struct AlignStage: Stage {
    public let stageID = StageID.align
    public let unit = WorkUnit.clip
    public let configuration: PipelineConfiguration.Align
    public let normalize: PipelineConfiguration.Normalize
    public let minFrames: Int

    public init(configuration: PipelineConfiguration) {
        self.configuration = configuration.align
        self.normalize = configuration.normalize
        self.minFrames = SegmentStage(configuration: configuration).plan.minFrames
    }

    // v2: right-edge pixels of widths that are not a multiple of 16 converted (PackedPictureConverter).
    // v3: scheduled refreshes search a smaller area around the face and never the whole frame.
    public var fingerprint: String { Fingerprint.of("v3", Fingerprint.canonicalJSON(configuration), String(minFrames)) }

    /// One run of consecutive frames with a face, and where its aligned copy goes.
    public struct Piece: Codable, Sendable, Equatable {
        /// Frames on the source's 25 fps timeline.
        public var frames: Range<Int>
        public var video: String
        public var landmarks: String
    }

    struct Metrics: Codable {
        var pieces: [Piece]
        /// Read on from the previous clip's pass (no seek, no decoding from the keyframe before).
        var continuedRead: Bool
        var rejectedPieces: [Rejected]
        var noFaceFrames: [Range<Int>]
        var tracker: FaceTracker.Statistics
        var seconds: Timings
    }
    struct Rejected: Codable { var frames: Range<Int>; var reason: String }
    /// Seconds per step: `decode` is demuxing and decoding inside the reader (audio included),
    /// `convert` the frame's conversion to RGB, `track` the tracker's and aligner's own bookkeeping.
    struct Timings: Codable { var decode = 0.0, convert = 0.0, detect = 0.0, landmarks = 0.0, track = 0.0, warp = 0.0, encode = 0.0 }

    /// A face run being encoded while the clip is read.
    private final class OpenPiece {
        let start: Int
        var end: Int
        var aligner: FaceAligner
        let writer: ClipWriter
        let pending: OutputFiles.PendingFile
        var record: AlignedLandmarks
        init(start: Int, aligner: FaceAligner, writer: ClipWriter, pending: OutputFiles.PendingFile, resolution: Int) {
            self.start = start; self.end = start; self.aligner = aligner; self.writer = writer; self.pending = pending
            self.record = AlignedLandmarks(resolution: resolution)
        }
    }

    /// Names an open reader of `source` positioned at timeline frame `frame`.
    static func passKey(_ source: SourceRecord, at frame: Int) -> String { "align s\(source.id ?? -1) f\(frame)" }

    public func run(_ item: WorkItem, in context: StageContext) throws -> StageOutcome {
        guard let clip = item.clip else { throw StageError(stage: id, item: item.name, message: "align works on clips") }
        let rate = Rational(Int64(normalize.fps), 1)
        // The clip before this one in the source, if this worker just aligned it, left its reader
        // open at this clip's first frame (`WorkQueue` keeps runs of clips on one worker): going on
        // from there skips the seek and the decoding from the keyframe before the clip.
        let carried = context.lane.take(NormalizedReader.Pass.self, key: Self.passKey(item.source, at: clip.startFrame))
        let pass = try carried ?? context.normalizedReader(for: item, stage: id, normalize: normalize).pass(from: clip.startFrame)
        let reader = pass.reader
        let rotation = pass.rotationDegrees
        let tracker = FaceTracker(detector: try DlibFaceLandmarkDetector(modelPath: configuration.landmarkModel), settings: configuration.tracker)
        let template = AlignmentTemplate(resolution: configuration.resolution)
        let converter = PackedPictureConverter(order: .rgb)
        let samplesPerFrame = normalize.sampleRate / normalize.fps

        var timings = Timings()
        var closed: [OpenPiece] = []
        var open: OpenPiece?
        var noFace: [Range<Int>] = []
        var audio: [Float] = []
        func clock<T>(_ keyPath: WritableKeyPath<Timings, Double>, _ body: () throws -> T) rethrows -> T {
            let start = Date()
            defer { timings[keyPath: keyPath] += Date().timeIntervalSince(start) }
            return try body()
        }
        func close() { if let piece = open { closed.append(piece); open = nil } }

        var inCallbacks = 0.0
        let readStart = Date()
        do {
            try pass.read(upTo: clip.endFrame, video: { index, frame in
                let callbackStart = Date()
                defer { inCallbacks += Date().timeIntervalSince(callbackStart) }
                let image = try clock(\.convert) { try converter.image(of: frame).rotated(clockwise: rotation) }
                guard let landmarks = try tracker.landmarks(in: image) else {
                    close()
                    if let last = noFace.last, last.upperBound == index { noFace[noFace.count - 1] = last.lowerBound..<(index + 1) } else { noFace.append(index..<(index + 1)) }
                    return
                }
                if open == nil {
                    let n = closed.count
                    let pending = try context.outputs.prepare(SegmentStage.clipPath(folder: "aligned", stem: item.source.namingStem,
                                                                                    scene: clip.sceneIndex, segment: clip.segmentIndex, suffix: "_p\(n)"))
                    var settings = ClipWriter.Settings(width: template.resolution, height: template.resolution)
                    settings.frameRate = rate
                    settings.sampleRate = normalize.sampleRate
                    settings.crf = configuration.crf
                    settings.preset = configuration.preset
                    settings.threads = 1
                    open = OpenPiece(start: index, aligner: FaceAligner(resolution: template.resolution, smoothing: configuration.smoothing),
                                     writer: try ClipWriter(path: pending.temporaryPath, settings: settings), pending: pending, resolution: template.resolution)
                }
                let piece = open!
                let smoothed = piece.aligner.smooth(landmarks)
                let matrix = piece.aligner.matrix(for: smoothed)
                let face = try clock(\.warp) {
                    try image.warpedLanczos(matrix, width: template.cropWidth, height: template.cropHeight)
                        .resized(width: template.resolution, height: template.resolution, interpolation: .lanczos4)
                }
                try clock(\.encode) { try piece.writer.writeVideo(Frame(rgb: face)) }
                piece.record.landmarks.append(landmarks)
                piece.record.matrices.append(matrix)
                piece.end = index + 1
            }, audio: { audio.append(contentsOf: $0) })
            timings.decode = Date().timeIntervalSince(readStart) - inCallbacks
            close()
            if clip.endFrame < reader.frameCount { context.lane.leave(pass, key: Self.passKey(item.source, at: clip.endFrame)) }
        } catch {
            for piece in closed + [open].compactMap({ $0 }) { piece.pending.discard() }
            throw error
        }
        timings.detect = tracker.statistics.detectSeconds
        timings.landmarks = tracker.statistics.landmarkSeconds
        timings.track = max(0, inCallbacks - timings.convert - timings.detect - timings.landmarks - timings.warp - timings.encode)

        var kept: [Piece] = []
        var rejected: [Rejected] = []
        let fps = Double(normalize.fps)
        let keep = closed.filter { $0.end - $0.start >= minFrames }
        for piece in closed where piece.end - piece.start < minFrames {
            piece.pending.discard()
            rejected.append(Rejected(frames: piece.start..<piece.end, reason: String(format: "face in frames %d–%d only: %.2f s, minimum %.2f s",
                                                                                   piece.start, piece.end - 1, Double(piece.end - piece.start) / fps, Double(minFrames) / fps)))
        }
        do {
            for (n, piece) in keep.enumerated() {
                let suffix = keep.count > 1 ? "_p\(n)" : ""
                let video = SegmentStage.clipPath(folder: "aligned", stem: item.source.namingStem, scene: clip.sceneIndex, segment: clip.segmentIndex, suffix: suffix)
                let sidecar = SegmentStage.clipPath(folder: "aligned", stem: item.source.namingStem, scene: clip.sceneIndex, segment: clip.segmentIndex,
                                                    suffix: suffix, extension: "landmarks")
                let from = (piece.start - clip.startFrame) * samplesPerFrame, to = (piece.end - clip.startFrame) * samplesPerFrame
                try clock(\.encode) {
                    try piece.writer.writeAudio(Array(audio[min(from, audio.count)..<min(to, audio.count)]))
                    try piece.writer.finish()
                }
                try piece.pending.commit(as: context.outputDirectory.appendingPathComponent(video))
                try context.outputs.publish(sidecar) { try piece.record.serialized().write(to: URL(fileURLWithPath: $0)) }
                kept.append(Piece(frames: piece.start..<piece.end, video: video, landmarks: sidecar))
            }
        } catch {
            for piece in keep { piece.pending.discard() }
            throw error
        }
        let metrics = metricsJSON(Metrics(pieces: kept, continuedRead: carried != nil, rejectedPieces: rejected, noFaceFrames: noFace, tracker: tracker.statistics, seconds: timings))
        guard !kept.isEmpty else {
            let gaps = noFace.map { "\($0.lowerBound)–\($0.upperBound - 1)" }.joined(separator: ", ")
            var reason = noFace.isEmpty ? "" : "no acceptable face in frames \(gaps)"
            if !rejected.isEmpty { reason += (reason.isEmpty ? "" : "; ") + rejected.map(\.reason).joined(separator: "; ") }
            return .rejected(reason: reason, metrics: metrics, handOn: HandOn())
        }
        let handOn = HandOn(pieces: kept.enumerated().map { n, piece in
            AlignedPieceRecord(ordinal: n, frames: piece.frames, video: piece.video, landmarks: piece.landmarks)
        })
        return .done(metrics: metrics, artifact: kept[0].video, handOn: handOn)
    }
}
