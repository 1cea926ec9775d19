import Foundation
import PipelineCore
import PipelineTestSupport
import Stages
import Testing

/// Stages 3–4 end to end on generated sources whose scene structure is known.
@Suite struct ScenesAndSegmentsTests {
    /// 21 s at 30 fps: a test pattern (6 s), colour bars (12 s), a fractal zoom (3 s); cuts at 6 s
    /// and 18 s, i.e. timeline frames 150 and 450.
    static func makeThreeScenes(_ url: URL) throws {
        try Fixtures.ffmpeg(["-f", "lavfi", "-t", "6", "-i", "testsrc2=size=320x240:rate=30",
                             "-f", "lavfi", "-t", "12", "-i", "smptehdbars=size=320x240:rate=30",
                             "-f", "lavfi", "-t", "3", "-i", "mandelbrot=size=320x240:rate=30",
                             "-f", "lavfi", "-t", "21", "-i", "sine=frequency=250:sample_rate=44100",
                             "-filter_complex", "[0:v][1:v][2:v]concat=n=3:v=1:a=0[v]", "-map", "[v]", "-map", "3:a",
                             "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-c:a", "aac"], output: url)
    }

    func clipTable(_ store: PipelineStore, _ path: String) throws -> [[Int]] {
        let source = try #require(try store.activeSources().first { $0.relativePath == path })
        return try store.clips(sourceId: source.id!).map { [$0.sceneIndex, $0.segmentIndex, $0.startFrame, $0.endFrame] }
    }

    @Test func clipTableMatchesTheKnownScenes() async throws {
        let root = try Fixtures.temporaryDirectory("scenes")
        defer { try? FileManager.default.removeItem(at: root) }
        let input = root.appendingPathComponent("raw/talks")
        try FileManager.default.createDirectory(at: input, withIntermediateDirectories: true)
        try Self.makeThreeScenes(input.appendingPathComponent("three scenes.mp4"))
        try Fixtures.video(input.appendingPathComponent("short.mp4"), seconds: 4, rate: "25")

        var configuration = PipelineConfiguration()
        configuration.broken.minDurationSeconds = 1
        configuration.segment.materialize = true
        let store = try PipelineStore(path: root.appendingPathComponent("out/pipelined.sqlite").path)
        let trace = root.appendingPathComponent("trace").path
        func run(_ c: PipelineConfiguration) async throws {
            let engine = Engine(store: store, configuration: c, stages: StageRegistry.stages(for: c),
                                options: EngineOptions(inputDirectory: root.appendingPathComponent("raw"), outputDirectory: root.appendingPathComponent("out"),
                                                       jobs: 2, traceFile: trace, version: "test"), reporter: RecordingReporter())
            let summary = try await engine.run()
            #expect(summary.failed == 0)
        }
        try await run(configuration)

        let scenes = try #require(try store.currentResults(stage: "scenes").values.first { $0.state == .done && $0.metrics!.contains("\"scenes\":3") })
        #expect(scenes.metrics!.contains("\"cuts\":[150,450]"), "\(scenes.metrics!)")
        // 6 s → one clip of 150 frames; 12 s → 5 s + 7 s; 3 s → too short.
        #expect(try clipTable(store, "talks/three scenes.mp4") == [[0, 0, 0, 150], [1, 0, 150, 275], [1, 1, 275, 450]])
        let segment = try decisions(store, stage: "segment")
        #expect(segment["talks/three scenes.mp4"]?.state == .done)
        #expect(segment["talks/short.mp4"]?.state == .rejected)
        #expect(segment["talks/short.mp4"]?.reason?.contains("no scene lasts 5.0 s: the longest of 1 is 4.00 s") == true, "\(segment["talks/short.mp4"]?.reason ?? "")")

        // Materialised pieces carry the reference's names and exactly their frames.
        for (name, frames) in [("three scenes_shot_001_000.mp4", 150), ("three scenes_shot_002_000.mp4", 125), ("three scenes_shot_002_001.mp4", 175)] {
            let url = root.appendingPathComponent("out/segmented/talks").appendingPathComponent(name)
            let report = try ScanPass().run(path: url.path)
            #expect(report.videoFrames == frames, "\(name): \(report.videoFrames) frames")
            #expect(abs(report.audioSeconds - Double(frames) / 25) < 0.07, "\(name): \(report.audioSeconds) s of audio")
        }

        // A changed decision setting re-decides from stored scores: nothing is decoded again.
        let executedBefore = try String(contentsOfFile: trace, encoding: .utf8).split(separator: "\n").count
        var noCuts = configuration
        noCuts.scenes.detector = "content"
        noCuts.scenes.threshold = 255
        noCuts.segment.materialize = false
        try await run(noCuts)
        let executed = try String(contentsOfFile: trace, encoding: .utf8).split(separator: "\n").dropFirst(executedBefore).map { String($0.split(separator: "\t")[0]) }
        #expect(!executed.contains("broken") && !executed.contains("normalize"), "stages re-executed: \(executed)")
        #expect(executed.filter { $0 == "scenes" }.count == 2)
        // One 21 s scene: 5 + 5 + 5 + 6 s.
        #expect(try clipTable(store, "talks/three scenes.mp4") == [[0, 0, 0, 125], [0, 1, 125, 250], [0, 2, 250, 375], [0, 3, 375, 525]])
    }
}
