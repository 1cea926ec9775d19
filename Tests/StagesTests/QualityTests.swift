import Foundation
import PipelineCore
import PipelineTestSupport
import Stages
import Testing

/// Stage 7's default method: BRISQUE (OpenCV contrib, Debian's LIVE model) on the first, middle and
/// last frame keeps a clean aligned clip and rejects the same clip after heavy blur and compression.
@Suite struct QualityTests {
    static func scorer() throws -> BrisqueScorer {
        let q = PipelineConfiguration().quality
        return try BrisqueScorer(model: q.brisqueModel, range: q.brisqueRange)
    }

    /// A 25-frame 256×256 clip of the aligned astronaut (golden/affine's face256_f1) drifting by a
    /// pixel per frame, encoded as stage 5 encodes (CRF 18) or blurred (shrunk to a fifth and
    /// enlarged) and encoded at CRF 48.
    static func clip(_ path: String, degraded: Bool) throws {
        let g = try SafeTensorsFile(contentsOf: Golden.directory.appendingPathComponent("affine/affine.safetensors"))
        let face = RGBImage(width: 256, height: 256, pixels: try g.uint8("face256_f1"))
        var settings = ClipWriter.Settings(width: 256, height: 256)
        settings.crf = degraded ? 48 : 18
        let writer = try ClipWriter(path: path, settings: settings, withAudio: false)
        for t in 0..<25 {
            var frame = try face.warpedLanczos(AffineMatrix(1, 0, Double(t % 5), 0, 1, Double(t % 3)), width: 256, height: 256)
            if degraded {
                frame = try frame.resized(width: 51, height: 51, interpolation: .area).resized(width: 256, height: 256, interpolation: .linear)
            }
            try writer.writeVideo(Frame(rgb: frame))
        }
        try writer.finish()
    }

    @Test func cleanClipKeptDegradedClipRejected() throws {
        let dir = try Fixtures.temporaryDirectory("quality")
        defer { try? FileManager.default.removeItem(at: dir) }
        let scorer = try Self.scorer()
        let threshold = PipelineConfiguration().quality.maxBrisque
        var means: [Bool: Double] = [:]
        for degraded in [false, true] {
            let path = dir.appendingPathComponent(degraded ? "bad.mp4" : "good.mp4").path
            try Self.clip(path, degraded: degraded)
            let scores = try QualityStage.scores(of: path, frames: 25, scorer: scorer)
            #expect(scores.count == 3)
            means[degraded] = scores.reduce(0, +) / 3
        }
        print(String(format: "BRISQUE: clean clip %.1f, blurred + CRF 48 %.1f, threshold %.1f", means[false]!, means[true]!, threshold))
        #expect(means[false]! <= threshold - 10, "clean clip scores \(means[false]!)")
        #expect(means[true]! > threshold + 10, "degraded clip scores \(means[true]!)")
    }

    @Test func missingModelIsAClearError() {
        #expect(throws: VisionError.brisqueModelMissing(path: "/nonexistent/brisque_model_live.yml")) {
            try BrisqueScorer(model: "/nonexistent/brisque_model_live.yml", range: PipelineConfiguration().quality.brisqueRange)
        }
    }

    @Test func samplesFirstMiddleAndLastFrame() {
        #expect(QualityStage.sampledFrames(count: 135) == [0, 67, 134])
        #expect(QualityStage.sampledFrames(count: 1) == [0])
    }
}
