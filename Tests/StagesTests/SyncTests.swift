import Foundation
import PipelineCore
import PipelineTestSupport
import Stages
import Testing

/// Stage 6's weight-free `correlation` method on talking clips with known audio offsets.
@Suite struct SyncTests {
    /// dlib's landmarks on every rendered frame of a talking clip (no encoding in between).
    static func landmarks(frames: Int, scale: Double) throws -> [[Point2]] {
        let photo = try FaceClips.astronaut()
        let levels = TalkingClips.mouthLevels(try TalkingClips.speech(), frames: frames)
        let tracker = FaceTracker(detector: try DlibFaceLandmarkDetector())
        return try (0..<frames).map { t in
            try #require(try tracker.landmarks(in: TalkingClips.render(t, photo: photo, level: levels[t], scale: scale)), "no face in frame \(t)")
        }
    }

    /// The offset is recovered within ±1 frame in at least 90 % of clips shifted by −8…+8 frames,
    /// and the confidence separates speech that drives the mouth from unrelated speech.
    @Test func correlationRecoversKnownOffsets() throws {
        let speech = try TalkingClips.speech()
        let method = CorrelationSync()
        let frames = 130
        var within = 0, matched: [Double] = [], unrelated: [Double] = []
        let offsets = [-8, -6, -3, -1, 0, 1, 3, 5, 7, 8]
        for (n, offset) in offsets.enumerated() {
            let landmarks = try Self.landmarks(frames: frames, scale: 1.4 + 0.08 * Double(n))
            let m = try method.measure(landmarks: landmarks, audio: TalkingClips.shiftedAudio(speech, frames: frames, offset: offset))
            if abs(m.offset - offset) <= 1 { within += 1 }
            matched.append(m.confidence)
            // The same picture with other speech.
            let other = try method.measure(landmarks: landmarks, audio: TalkingClips.shiftedAudio(TalkingClips.unrelatedSpeech(seed: n), frames: frames, offset: 0))
            unrelated.append(other.confidence)
            print("offset \(offset): measured \(m.offset), confidence \(String(format: "%.3f", m.confidence)); unrelated audio \(String(format: "%.3f", other.confidence))")
        }
        #expect(Double(within) >= 0.9 * Double(offsets.count), "offset within ±1 in \(within) of \(offsets.count) clips")
        let threshold = PipelineConfiguration().sync.minConfidence
        #expect(matched.filter { $0 >= threshold }.count >= 9, "matched confidences \(matched) vs threshold \(threshold)")
        #expect(unrelated.filter { $0 < threshold }.count >= 9, "unrelated confidences \(unrelated) vs threshold \(threshold)")
    }
}
