import Foundation
import PipelineCore
import PipelineTestSupport
import Testing

/// Parity with PySceneDetect 0.6.1 on `golden/scenedetect` (README: scores within 1e-9 with
/// identically decoded frames, up to about 1.0 with another decoder; cut lists identical).
@Suite struct SceneDetectionParityTests {
    struct Reference: Sendable {
        let video: URL
        let tensors: SafeTensorsFile
        let contentCuts: [Int]
        let adaptiveCuts: [Int]
    }

    static func reference() throws -> Reference {
        let dir = try Golden.directory.appendingPathComponent("scenedetect")
        let expected = try JSONSerialization.jsonObject(with: Data(contentsOf: dir.appendingPathComponent("expected.json"))) as! [String: Any]
        return Reference(video: dir.appendingPathComponent("scenes_320x240_25fps.mp4"),
                         tensors: try SafeTensorsFile(contentsOf: dir.appendingPathComponent("scenedetect.safetensors")),
                         contentCuts: (expected["content_detector"] as! [String: Any])["cuts"] as! [Int],
                         adaptiveCuts: (expected["adaptive_detector"] as! [String: Any])["cuts"] as! [Int])
    }

    /// One scan of the golden video for the whole suite.
    static let scanned: Result<(ContentScores, Reference), any Error> = Result { try scan() }
    static func scores() throws -> (ContentScores, Reference) { try scanned.get() }

    static func scan() throws -> (ContentScores, Reference) {
        let ref = try reference()
        let scorer = ContentScorer()
        let report = try ScanPass(timelineAnalyzers: [scorer]).run(path: ref.video.path)
        #expect(report.frameMap?.outputFrameCount == 500)
        return (scorer.scores, ref)
    }

    @Test func contentScoresMatchPySceneDetect() throws {
        let (scores, ref) = try Self.scores()
        #expect(scores.count == 500)
        let hue = try ref.tensors.float64("delta_hue"), sat = try ref.tensors.float64("delta_sat"), lum = try ref.tensors.float64("delta_lum")
        let content = try ref.tensors.float64("content_val")
        var worst = 0.0
        for i in 1..<500 {
            worst = max(worst, abs(scores.hue[i] - hue[i]), abs(scores.saturation[i] - sat[i]), abs(scores.luma[i] - lum[i]))
            worst = max(worst, abs(scores.score(i, weights: ContentWeights()) - content[i]))
        }
        #expect(scores.hue[0].isNaN)
        // Our decode (libavcodec + swscale bicubic to BGR24, as OpenCV's FFmpeg backend does) gives
        // the reference's pixels, so the README's bound for identical decoding applies.
        #expect(worst <= 1e-9, "largest score difference \(worst)")
        print("scenedetect parity: largest per-frame score difference \(worst)")
    }

    @Test func cutListsMatchPySceneDetect() throws {
        let (scores, ref) = try Self.scores()
        let content = ref.contentCuts, adaptive = ref.adaptiveCuts
        #expect(adaptive == [100, 180, 230, 280, 440])
        var contentDetector = ContentCutDetector(threshold: 27, minSceneLength: 15)
        var adaptiveDetector = AdaptiveCutDetector(adaptiveThreshold: 2, windowWidth: 2, minContentValue: 15, minSceneLength: 15)
        #expect(contentDetector.cuts(scores, weights: ContentWeights()) == content)
        #expect(adaptiveDetector.cuts(scores, weights: ContentWeights()) == adaptive)

        // Adaptive ratios are defined for frames 2...497 and agree with the reference.
        let ratios = try ref.tensors.float64("adaptive_ratio")
        #expect(Set(adaptiveDetector.ratios.keys) == Set(2...497))
        let worst = (2...497).map { abs(adaptiveDetector.ratios[$0]! - ratios[$0]) / max(1, abs(ratios[$0])) }.max()!
        #expect(worst <= 1e-9, "largest relative ratio difference \(worst)")
        // Scenes: ours keep the last frame in the last scene (0.6.1 drops it).
        #expect(PipelineCore.scenes(cuts: adaptive, frameCount: 500) == [0..<100, 100..<180, 180..<230, 230..<280, 280..<440, 440..<500])
    }

    /// The HSV conversion reproduces OpenCV's on the reference's own decoded frames, exactly.
    @Test func hsvOfProbeFramesIsExact() throws {
        let ref = try Self.reference()
        let frames = try ref.tensors.uint8("probe_frames_bgr") // [4, 240, 320, 3]
        let n = 240 * 320
        let content = try ref.tensors.float64("content_val")
        // Frames 99 → 100 (a hard cut) and 229 → 230 (the flash): exact deltas from exact BGR.
        for (a, b, frame) in [(0, 1, 100), (2, 3, 230)] {
            let hsvA = TestHooks.hsv(Array(frames[(a * n * 3)..<((a + 1) * n * 3)]))
            let hsvB = TestHooks.hsv(Array(frames[(b * n * 3)..<((b + 1) * n * 3)]))
            var sums = [0, 0, 0]
            for i in 0..<(n * 3) { sums[i % 3] += abs(Int(hsvA[i]) - Int(hsvB[i])) }
            let value = Double(sums[0] + sums[1] + sums[2]) / Double(n) / 3
            #expect(abs(value - content[frame]) < 1e-9, "frame \(frame): \(value) vs \(content[frame])")
        }
    }

    /// Detectors are streaming: no cut is reported later than the declared lag.
    @Test func cutsArriveWithinTheDeclaredLag() throws {
        let (scores, _) = try Self.scores()
        var detector = AdaptiveCutDetector()
        for i in 0..<scores.count {
            for cut in detector.push(frame: i, score: scores.score(i, weights: ContentWeights())) {
                #expect(i - cut <= detector.maxEventLag)
            }
        }
    }
}
