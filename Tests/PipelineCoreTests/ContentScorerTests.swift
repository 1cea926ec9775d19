import Foundation
import PipelineCore
import PipelineTestSupport
import Testing

@Suite struct ContentScorerTests {
    /// The downscale equals OpenCV 4.9's `cv2.resize(..., INTER_LINEAR)` byte for byte. Expected
    /// values printed by (opencv-python-headless 4.9.0.80, the reference's pin):
    ///
    ///     def pattern(w, h):
    ///         y, x = np.mgrid[0:h, 0:w].astype(np.int64)
    ///         b = (x * 7 + y * 3) % 256; g = (x * x + y * 11) % 256; r = (x * y + 5 * x + 13) % 256
    ///         return np.stack([b, g, r], axis=-1).astype(np.uint8)
    ///     out = cv2.resize(pattern(w, h), (dw, dh), interpolation=cv2.INTER_LINEAR)
    ///     print(int(out.astype(np.int64).sum()), hashlib.sha256(out.tobytes()).hexdigest()[:16])
    @Test(arguments: [
        (1920, 1080, 274, 154, 16_118_701, "d6334da026193742"),  // factor 7, fractional taps
        (1280, 720, 256, 144, 14_075_904, "c2b271e528c02561"),   // factor 5, taps on pixels
        (640, 360, 320, 180, 22_011_968, "4b4822366006595b"),    // exact halving (INTER_AREA path)
        (1000, 700, 333, 233, 29_631_619, "242a66092b6799de"),   // factor 3, fractional
        (333, 251, 111, 84, 3_564_141, "2a356a29d8d92ced"),      // odd sizes
    ])
    func resizeMatchesOpenCV(w: Int, h: Int, dw: Int, dh: Int, sum: Int, sha: String) {
        var bgr = [UInt8](repeating: 0, count: w * h * 3)
        for y in 0..<h { for x in 0..<w {
            let i = (y * w + x) * 3
            bgr[i] = UInt8((x * 7 + y * 3) % 256); bgr[i + 1] = UInt8((x * x + y * 11) % 256); bgr[i + 2] = UInt8((x * y + 5 * x + 13) % 256)
        } }
        let out = TestHooks.resizeLinear(bgr, width: w, height: h, to: dw, dh)
        #expect(out.reduce(0) { $0 + Int($1) } == sum)
        #expect(String(Fingerprint.sha256(out).prefix(16)) == sha)
    }

    /// Scoring on a background thread gives exactly the scores of scoring inline, and an analyzer's
    /// error surfaces from the scan.
    @Test func backgroundScoringIsIdenticalAndReportsErrors() throws {
        let video = try Golden.directory.appendingPathComponent("scenedetect/scenes_320x240_25fps.mp4")
        let inline = ContentScorer(), background = ContentScorer()
        _ = try ScanPass(timelineAnalyzers: [inline, BackgroundAnalyzer(background)]).run(path: video.path)
        #expect(background.scores.count == 500)
        #expect(background.scores.luma.dropFirst() == inline.scores.luma.dropFirst())
        #expect(background.scores.hue.dropFirst() == inline.scores.hue.dropFirst())

        final class Failing: TimelineAnalyzer {
            struct Boom: Error {}
            let maxEventLag = 0
            func process(_ frame: Frame, index: Int) throws { if index == 40 { throw Boom() } }
            func finish(frameCount: Int) throws {}
        }
        #expect(throws: Failing.Boom.self) { try ScanPass(timelineAnalyzers: [BackgroundAnalyzer(Failing())]).run(path: video.path) }
    }

    /// Converting only the rows the downscale reads gives exactly the scores of converting whole frames.
    @Test(arguments: ["1280x720", "1920x1080", "640x360", "1000x700"])
    func rowSlicingIsExact(size: String) throws {
        let dir = try Fixtures.temporaryDirectory("slice")
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("v.mp4")
        try Fixtures.ffmpeg(["-f", "lavfi", "-t", "1", "-i", "testsrc2=size=\(size):rate=25", "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"], output: url)
        let sliced = ContentScorer(), whole = TestHooks.wholeFrameScorer()
        _ = try ScanPass(timelineAnalyzers: [sliced, whole]).run(path: url.path)
        #expect(sliced.scores.count == 25)
        #expect(sliced.scores.hue.dropFirst() == whole.scores.hue.dropFirst())
        #expect(sliced.scores.saturation.dropFirst() == whole.scores.saturation.dropFirst())
        #expect(sliced.scores.luma.dropFirst() == whole.scores.luma.dropFirst())
        #expect(sliced.scores.luma.dropFirst().contains { $0 > 0 }, "the pattern moves, so scores are not all zero")
    }
}
