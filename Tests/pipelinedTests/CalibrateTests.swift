import Foundation
import PipelineCore
import PipelineTestSupport
import Stages
import Testing

/// `pipelined calibrate sync` on a dataset whose clips are in sync with their own audio and cannot
/// be with another source's: the threshold it prints lies between the two distributions, the
/// report draws both, and `--apply` turns a too-strict configuration into one whose next `run`
/// keeps the clips — re-deciding stage 6 from its stored scores, measuring nothing again.
@Suite(.serialized) struct CalibrateTests {
    @Test func negativeControlsSetTheThreshold() throws {
        let root = try Fixtures.temporaryDirectory("calibrate")
        defer { try? FileManager.default.removeItem(at: root) }
        let input = root.appendingPathComponent("raw"), out = root.appendingPathComponent("data")
        try FileManager.default.createDirectory(at: input, withIntermediateDirectories: true)
        // Four speakers, each with a different stretch of the read speech (in sync with it).
        for k in 1...4 {
            try TalkingClips.write(input.appendingPathComponent("speaker_\(k).mp4"), frames: 135, offset: 0, photo: FaceClips.astronaut(),
                                   speech: TalkingClips.unrelatedSpeech(seed: k), canvas: (640, 480), scale: 1.6)
        }
        // Too strict for this footage: every clip is rejected at stage 6.
        let strict = root.appendingPathComponent("strict.conf"), applied = root.appendingPathComponent("applied.conf")
        let text = "# test settings\n[broken]\nmin_duration_seconds = 1\n\n[sync]\nmin_confidence = 0.95\nmax_offset = 15\n"
        try text.write(to: strict, atomically: true, encoding: .utf8)
        try text.write(to: applied, atomically: true, encoding: .utf8)
        let first = try CLI.run(["run", "--input-dir", input.path, "--output-dir", out.path, "--config", strict.path, "--quiet"])
        #expect(first.status == 0, "\(first.stderr)")
        let store = try PipelineStore(readingOnly: out.appendingPathComponent("pipelined.sqlite").path)
        let before = try decisions(store, stage: "sync")
        #expect(before.count == 4 && before.values.allSatisfy { $0.state == .rejected && ($0.reason ?? "").contains("below 0.950") }, "\(before)")

        let calibrate = try CLI.run(["calibrate", "sync", "--input-dir", input.path, "--output-dir", out.path, "--config", strict.path,
                                     "--seed", "7", "--apply", applied.path])
        #expect(calibrate.status == 0, "\(calibrate.stderr)")
        print(calibrate.stdout)
        let c = try #require(try SyncCalibration.load(from: out))
        #expect(c.matched.count == 4 && c.mismatched.count == 12 && c.seed == 7 && c.method == "correlation")
        // The premise (this footage separates), then the threshold between the two.
        let lowestMatched = c.matched.map(\.confidence).min()!, highestMismatched = c.mismatched.map(\.confidence).max()!
        #expect(highestMismatched < lowestMatched, "matched \(c.matched.map(\.confidence)), mismatched \(c.mismatched.map(\.confidence))")
        #expect(highestMismatched < c.threshold && c.threshold <= lowestMatched, "threshold \(c.threshold)")
        #expect(c.falseAccepts == 0 && c.matchedKept == 1)
        let printed = try #require(calibrate.stdout.split(separator: "\n").first { $0.hasPrefix("threshold: [sync] min_confidence = ") })
        #expect(Double(printed.split(separator: " ")[4]) == c.threshold, "printed: \(printed)")
        #expect(calibrate.stdout.contains("keeps 0 of 12 mismatched pairs") && calibrate.stdout.contains("4 of 4 matched clips"))
        // --apply changed that one line and kept the rest.
        let edited = try String(contentsOf: applied, encoding: .utf8)
        #expect(edited.hasPrefix("# test settings\n[broken]\nmin_duration_seconds = 1\n\n[sync]\nmin_confidence = ") && edited.contains("\nmax_offset = 15\n"))
        #expect(try PipelineConfiguration.load(applied).sync.minConfidence == c.threshold)
        #expect(try String(contentsOf: strict, encoding: .utf8) == text)

        // The report draws both distributions: in the DOM and in the pixels Chromium renders.
        let page = root.appendingPathComponent("report.html"), shot = root.appendingPathComponent("report.png")
        let report = try CLI.run(["report", "--output-dir", out.path, "--config", applied.path, "--html", page.path])
        #expect(report.status == 0, "\(report.stderr)")
        let browser = try ReportTests.chromium()
        let flags = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars"]
        let dom = String(decoding: try Fixtures.run(browser, flags + ["--dump-dom", page.absoluteString]).stdout, as: UTF8.self)
        #expect(dom.contains("Sync calibration") && dom.contains("own audio vs another source"))
        #expect(dom.components(separatedBy: "class=\"matched\"").count > 1 && dom.components(separatedBy: "class=\"mismatched\"").count > 1)
        let screenshot = try Fixtures.run(browser, flags + ["--window-size=1200,2400", "--screenshot=\(shot.path)", page.absoluteString])
        #expect(screenshot.status == 0, "\(screenshot.stderr)")
        let pixels = try Self.colorCounts(shot, [ReportPage.calibrationColors.matched, ReportPage.calibrationColors.mismatched])
        #expect(pixels.allSatisfy { $0 > 50 }, "pixels of the matched and mismatched bars in the screenshot: \(pixels)")

        // The next run with the applied configuration keeps every clip and measures nothing again.
        let trace = root.appendingPathComponent("trace.log")
        let second = try CLI.run(["run", "--input-dir", input.path, "--output-dir", out.path, "--config", applied.path, "--quiet"],
                                 environment: ["PIPELINED_TRACE": trace.path])
        #expect(second.status == 0, "\(second.stderr)")
        let after = try decisions(store, stage: "sync")
        #expect(after.count == 4 && after.values.allSatisfy { $0.state == .done }, "\(after)")
        let executed = try String(contentsOf: trace, encoding: .utf8).split(separator: "\n").map { String($0.split(separator: "\t")[0]) }
        #expect(!executed.contains("align") && executed.filter { $0 == "sync" }.count == 4, "executed: \(executed)")
        for row in try store.currentResults(stage: "sync").values {
            let metrics = try JSONSerialization.jsonObject(with: Data((row.metrics ?? "{}").utf8)) as! [String: Any]
            #expect(metrics["measured"] as? Int == 0, "sync measured again: \(row.metrics ?? "")")
        }
        #expect(try String(contentsOf: out.appendingPathComponent("fileslist.txt"), encoding: .utf8).split(separator: "\n").count == 4)
    }

    /// How many pixels of a PNG have exactly each of `colors` ("#rrggbb"), decoded by ffmpeg.
    static func colorCounts(_ png: URL, _ colors: [String]) throws -> [Int] {
        let r = try Fixtures.run("ffmpeg", ["-nostdin", "-v", "error", "-i", png.path, "-f", "rawvideo", "-pix_fmt", "rgb24", "-"])
        guard r.status == 0 else { throw Fixtures.Failure(description: r.stderr) }
        let wanted = colors.map { hex in [UInt8](stride(from: 1, to: 7, by: 2).map { UInt8(hex.dropFirst($0).prefix(2), radix: 16)! }) }
        var counts = [Int](repeating: 0, count: colors.count)
        r.stdout.withUnsafeBytes { (raw: UnsafeRawBufferPointer) in
            var i = 0
            while i + 2 < raw.count {
                for (k, w) in wanted.enumerated() where raw[i] == w[0] && raw[i + 1] == w[1] && raw[i + 2] == w[2] { counts[k] += 1 }
                i += 3
            }
        }
        return counts
    }
}
