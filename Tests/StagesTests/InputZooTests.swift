import Foundation
import PipelineCore
import PipelineTestSupport
import Stages
import Testing

/// Every kind of input ends `done` or `rejected` with a specific reason; none stops the run; the
/// inputs are byte-identical afterwards; a second run executes nothing.
@Suite struct InputZooTests {
    @Test func everyInputGetsAClearOutcome() async throws {
        let root = try Fixtures.temporaryDirectory("zoo")
        defer { try? FileManager.default.removeItem(at: root) }
        let input = root.appendingPathComponent("raw")
        try FileManager.default.createDirectory(at: input, withIntermediateDirectories: true)
        let cases = try Fixtures.makeInputZoo(in: input)
        let before = try Fixtures.digests(of: input)

        var configuration = PipelineConfiguration()
        configuration.broken.minDurationSeconds = 1
        configuration.normalize.materialize = true
        let store = try PipelineStore(path: root.appendingPathComponent("out/pipelined.sqlite").path)
        let trace = root.appendingPathComponent("trace.log").path
        func engine() -> Engine {
            Engine(store: store, configuration: configuration, stages: StageRegistry.stages(for: configuration),
                   options: EngineOptions(inputDirectory: input, outputDirectory: root.appendingPathComponent("out"), jobs: 2,
                                          traceFile: trace, version: "test"),
                   reporter: RecordingReporter())
        }
        let summary = try await engine().run()
        #expect(summary.failed == 0)

        let broken = try decisions(store, stage: "broken")
        let normalize = try decisions(store, stage: "normalize")
        for c in cases {
            let outcome = try #require(broken[c.file], "no stage-1 result for \(c.file)")
            if c.expectDone {
                #expect(outcome.state == .done, "\(c.file): \(outcome.reason ?? "")")
                #expect(normalize[c.file]?.state == .done, "\(c.file) normalize: \(normalize[c.file]?.reason ?? "missing")")
                let materialized = root.appendingPathComponent("out").appendingPathComponent(NormalizeStage.materializedPath(for: c.file))
                try Self.checkMaterialized(materialized, source: input.appendingPathComponent(c.file), store: store, file: c.file)
            } else {
                #expect(outcome.state == .rejected, "\(c.file) should be rejected")
                #expect(outcome.reason?.contains(c.reason!) == true, "\(c.file): reason \"\(outcome.reason ?? "nil")\" lacks \"\(c.reason!)\"")
                #expect(normalize[c.file] == nil)
            }
        }
        #expect(try Fixtures.digests(of: input) == before, "inputs were modified")

        // Metadata was stored: the rotated file reports the clockwise rotation FFmpeg's own autorotation
        // applies to it (FFmpeg 5.1 shows a `rotate=90`-tagged remux with transpose=cclock: 270°).
        let rotated = try #require(try store.activeSources().first { $0.relativePath == "portrait_rotated.mp4" })
        let streams = try JSONDecoder().decode([StreamInfo].self, from: Data(rotated.probe!.utf8))
        #expect(streams.first { $0.kind == .video }?.rotationDegrees == 270)
        #expect(rotated.durationSeconds! > 1.5)

        // Nothing to do the second time: no execution at all.
        let executed = try String(contentsOfFile: trace, encoding: .utf8).split(separator: "\n").count
        _ = try await engine().run()
        #expect(try String(contentsOfFile: trace, encoding: .utf8).split(separator: "\n").count == executed)
    }

    /// The `resampled/` copy is 25 fps H.264 with 16 kHz mono AAC, has exactly the timeline's frames
    /// and audio of the same length, and keeps the source's rotation.
    static func checkMaterialized(_ url: URL, source: URL, store: PipelineStore, file: String) throws {
        #expect(FileManager.default.fileExists(atPath: url.path), "\(file) was not materialised")
        let copy = try ScanPass().run(path: url.path)
        let original = try ScanPass().run(path: source.path)
        let video = try #require(copy.streams.first { $0.kind == .video })
        let audio = try #require(copy.streams.first { $0.kind == .audio })
        #expect(video.codec == "h264" && video.averageFrameRate == Rational(25, 1), "\(file): \(video)")
        #expect(audio.codec == "aac" && audio.sampleRate == 16_000 && audio.channels == 1, "\(file): \(audio)")
        #expect(copy.videoFrames == original.frameMap?.outputFrameCount, "\(file): \(copy.videoFrames) frames written")
        #expect(abs(copy.audioSeconds - copy.videoSeconds) < 0.1, "\(file): audio \(copy.audioSeconds) s, video \(copy.videoSeconds) s")
        let sourceRotation = original.streams.first { $0.kind == .video }?.rotationDegrees ?? 0
        #expect((video.rotationDegrees ?? 0) == sourceRotation, "\(file): rotation \(video.rotationDegrees ?? 0), source \(sourceRotation)")
    }

    @Test func changedAndVanishedSourcesAreFollowed() async throws {
        let root = try Fixtures.temporaryDirectory("follow")
        defer { try? FileManager.default.removeItem(at: root) }
        let input = root.appendingPathComponent("raw")
        try FileManager.default.createDirectory(at: input, withIntermediateDirectories: true)
        try Fixtures.video(input.appendingPathComponent("a.mp4"), seconds: 1.5)
        try Fixtures.video(input.appendingPathComponent("b.mp4"), seconds: 1.5)
        var configuration = PipelineConfiguration()
        configuration.broken.minDurationSeconds = 1
        let store = try PipelineStore.inMemory()
        let engine = Engine(store: store, configuration: configuration, stages: StageRegistry.stages(for: configuration),
                            options: EngineOptions(inputDirectory: input, outputDirectory: root, jobs: 1, version: "test"),
                            reporter: RecordingReporter())
        _ = try await engine.run()
        #expect(try decisions(store, stage: "normalize").count == 2)

        // a.mp4 is replaced by a too-short file; b.mp4 disappears.
        try Fixtures.video(input.appendingPathComponent("a.mp4"), seconds: 0.5)
        try FileManager.default.removeItem(at: input.appendingPathComponent("b.mp4"))
        let second = try await engine.run()
        #expect(second.sources == SourceSync(new: 0, changed: 1, gone: 1, returned: 0))
        let broken = try decisions(store, stage: "broken")
        #expect(broken["a.mp4"]?.state == .rejected)
        #expect(broken["b.mp4"] == nil, "a vanished source is not active")
        #expect(try decisions(store, stage: "normalize")["a.mp4"] == nil, "the old stage-2 result no longer applies")
    }
}
