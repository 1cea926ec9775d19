import Foundation
import PipelineCore
import PipelineTestSupport
import Testing

/// `pipelined run` on talking clips, then `export` and `report`: the list has the published clip,
/// and the report renders in headless Chromium with its plots and the rejection reasons.
@Suite(.serialized) struct ReportTests {
    static func chromium() throws -> String {
        for path in ["/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"] where FileManager.default.isExecutableFile(atPath: path) {
            return path
        }
        throw Fixtures.Failure(description: "headless Chromium is needed to check the report renders: apt-get install chromium (scripts/setup.sh does)")
    }

    @Test func exportAndReportOfARealRun() throws {
        let root = try Fixtures.temporaryDirectory("report")
        defer { try? FileManager.default.removeItem(at: root) }
        let input = root.appendingPathComponent("raw"), out = root.appendingPathComponent("data")
        try FileManager.default.createDirectory(at: input, withIntermediateDirectories: true)
        try TalkingClips.write(input.appendingPathComponent("speaker.mp4"), frames: 130, offset: 2)
        try FaceClips.write(input.appendingPathComponent("nobody.mp4"), frames: 130, gap: 0..<130)
        try Fixtures.ffmpeg(["-f", "lavfi", "-i", "testsrc2=size=160x120:rate=25", "-t", "2", "-c:v", "libx264", "-preset", "ultrafast"],
                            output: input.appendingPathComponent("silent.mp4"))
        let run = try CLI.run(["run", "--input-dir", input.path, "--output-dir", out.path, "--quiet"])
        #expect(run.status == 0, "\(run.stderr)")

        let list = root.appendingPathComponent("train.txt")
        let export = try CLI.run(["export", "--output-dir", out.path, "--fileslist", list.path])
        #expect(export.status == 0, "\(export.stderr)")
        let lines = try String(contentsOf: list, encoding: .utf8).split(separator: "\n")
        #expect(lines == [Substring(out.appendingPathComponent("high_visual_quality/speaker_shot_001_000.mp4").path)])
        #expect(try String(contentsOf: out.appendingPathComponent("fileslist.txt"), encoding: .utf8) == String(contentsOf: list, encoding: .utf8))

        let page = root.appendingPathComponent("report.html")
        let report = try CLI.run(["report", "--output-dir", out.path, "--html", page.path])
        #expect(report.status == 0, "\(report.stderr)")
        let html = try String(contentsOf: page, encoding: .utf8)
        #expect(!html.contains("<script") && !html.contains("src=") && !html.contains("<link"), "the page must be self-contained")

        // Rendered by Chromium: the DOM it built, and a screenshot that is not blank.
        let browser = try Self.chromium()
        let flags = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars"]
        let dom = try Fixtures.run(browser, flags + ["--dump-dom", page.absoluteString])
        #expect(dom.status == 0, "\(dom.stderr)")
        let rendered = String(decoding: dom.stdout, as: UTF8.self)
        #expect(rendered.components(separatedBy: "<svg").count - 1 == 5, "funnel, three histograms and throughput expected")
        for text in ["Funnel", "publish", "Sync offset", "Sync confidence", "Quality (brisque", "no audio stream", "silent.mp4", "no acceptable face", "items/s"] {
            #expect(rendered.contains(text), "rendered page lacks \"\(text)\"")
        }
        let shot = root.appendingPathComponent("report.png")
        let screenshot = try Fixtures.run(browser, flags + ["--window-size=1200,1800", "--screenshot=\(shot.path)", page.absoluteString])
        #expect(screenshot.status == 0, "\(screenshot.stderr)")
        let png = try Data(contentsOf: shot)
        #expect(png.count > 20_000 && png.prefix(4) == Data([0x89, 0x50, 0x4E, 0x47]), "screenshot of \(png.count) bytes")
        try? FileManager.default.removeItem(at: URL(fileURLWithPath: "/tmp/pipelined-report.png"))
        try? FileManager.default.copyItem(at: shot, to: URL(fileURLWithPath: "/tmp/pipelined-report.png"))
    }
}
