import Foundation
import PipelineCore
import PipelineTestSupport
import Stages
import Testing

/// Stages 6–8 end to end: talking clips with known offsets become the curated dataset.
@Suite(.serialized) struct DatasetTests {
    struct Setup {
        let root: URL, input: URL, output: URL, store: PipelineStore
        func engine(_ c: PipelineConfiguration, trace: URL? = nil) -> Engine {
            Engine(store: store, configuration: c, stages: StageRegistry.stages(for: c),
                   options: EngineOptions(inputDirectory: input, outputDirectory: output, jobs: 2, traceFile: trace?.path, version: "test"),
                   reporter: RecordingReporter())
        }
        func run(_ c: PipelineConfiguration, trace: URL? = nil) async throws -> RunSummary {
            let engine = engine(c, trace: trace)
            let summary = try await engine.run()
            try DatasetIndex.write(store: store, configuration: c, outputDirectory: output)
            _ = try engine.collectOutputs(prune: false)
            return summary
        }
        func scored(_ stage: String) throws -> [String: (state: ItemState, reason: String?, measured: Int, pieces: [[String: Any]])] {
            try store.currentResults(stage: stage).mapValues { row in
                let m = try JSONSerialization.jsonObject(with: Data((row.metrics ?? "{}").utf8)) as! [String: Any]
                return (row.state, row.reason, m["measured"] as? Int ?? 0, m["pieces"] as? [[String: Any]] ?? [])
            }
        }
    }

    static func setUp() throws -> Setup {
        let root = try Fixtures.temporaryDirectory("dataset")
        let input = root.appendingPathComponent("raw"), output = root.appendingPathComponent("data")
        try FileManager.default.createDirectory(at: input, withIntermediateDirectories: true)
        try TalkingClips.write(input.appendingPathComponent("speaker_a.mp4"), frames: 135, offset: 4)
        try TalkingClips.write(input.appendingPathComponent("speaker_b.mp4"), frames: 135, offset: -3)
        try FaceClips.write(input.appendingPathComponent("nobody.mp4"), frames: 135, gap: 0..<135)
        return Setup(root: root, input: input, output: output, store: try PipelineStore(path: output.appendingPathComponent("pipelined.sqlite").path))
    }

    /// Offsets measured on the published clip itself (its landmarks and its own decoded audio).
    static func remeasure(video: String, landmarks: String) throws -> SyncMeasurement {
        let map = try #require(try ScanPass().run(path: video).frameMap)
        let audio = try NormalizedReader(path: video, frameMap: map).audioSamples()
        let sidecar = try AlignedLandmarks(serialized: Data(contentsOf: URL(fileURLWithPath: landmarks)))
        #expect(audio.count == sidecar.landmarks.count * 640, "published audio has \(audio.count) samples for \(sidecar.landmarks.count) frames")
        return try CorrelationSync().measure(landmarks: sidecar.landmarks, audio: Array(audio.prefix(sidecar.landmarks.count * 640)))
    }

    @Test func talkingClipsBecomeTheCuratedDataset() async throws {
        let s = try Self.setUp()
        defer { try? FileManager.default.removeItem(at: s.root) }
        var c = PipelineConfiguration()
        c.broken.minDurationSeconds = 1
        _ = try await s.run(c)

        // What was kept, what was rejected, and why.
        let sync = try s.scored("sync"), quality = try s.scored("quality"), publish = try s.scored("publish")
        let align = try s.store.currentResults(stage: "align")
        let names = Dictionary(uniqueKeysWithValues: try s.store.clipsOfActiveSources().map { ("c\($0.clip.id!)", $0.source.relativePath) })
        func result(_ r: [String: (state: ItemState, reason: String?, measured: Int, pieces: [[String: Any]])], _ name: String) -> (state: ItemState, reason: String?, measured: Int, pieces: [[String: Any]])? {
            r.first { names[$0.key] == name }?.value
        }
        #expect(align.first { names[$0.key] == "nobody.mp4" }?.value.state == .rejected)
        for (name, offset) in [("speaker_a.mp4", 4), ("speaker_b.mp4", -3)] {
            let measured = try #require(result(sync, name)?.pieces.first?["sync"] as? [String: Any])
            #expect(abs((measured["offset"] as! Int) - offset) <= 1, "\(name): offset \(measured)")
            #expect(result(publish, name)?.state == .done, "\(name) not published")
        }
        print("quality:", quality.map { (names[$0.key]!, $0.value.pieces.first?["quality"] ?? "-") })

        // The published clips, fileslist.txt (absolute paths, one per line) and manifest.jsonl.
        let published = try FileManager.default.subpathsOfDirectory(atPath: s.output.appendingPathComponent("high_visual_quality").path).filter { $0.hasSuffix(".mp4") }.sorted()
        #expect(published == ["speaker_a_shot_001_000.mp4", "speaker_b_shot_001_000.mp4"])
        let list = try String(contentsOf: s.output.appendingPathComponent("fileslist.txt"), encoding: .utf8).split(separator: "\n").map(String.init)
        #expect(list.count == 2 && list.allSatisfy { $0.hasPrefix("/") && FileManager.default.fileExists(atPath: $0) }, "\(list)")
        let manifest = try String(contentsOf: s.output.appendingPathComponent("manifest.jsonl"), encoding: .utf8).split(separator: "\n")
            .map { try JSONDecoder().decode(DatasetIndex.Entry.self, from: Data($0.utf8)) }
        #expect(manifest.map(\.video) == list)
        for entry in manifest {
            let piece = try #require(result(publish, entry.source)?.pieces.first)
            let measured = try #require(piece["sync"] as? [String: Any])
            #expect(entry.offset == measured["offset"] as? Int)
            #expect(abs(entry.syncConfidence! - (measured["confidence"] as! Double)) < 1e-12 && abs(entry.quality! - (piece["quality"] as! Double)) < 1e-12)
            #expect(entry.frames == [0, 135] && entry.scene == 1 && entry.segment == 0 && entry.syncMethod == "correlation", "\(entry)")
            // The published audio is in sync: measured again on the file, offset 0 ± 1.
            let again = try Self.remeasure(video: entry.video, landmarks: entry.landmarks)
            #expect(abs(again.offset) <= 1, "\(entry.source) after publishing: offset \(again.offset)")
        }

        // Thresholds change: everything is re-decided from the stored scores, none measured again.
        let trace = s.root.appendingPathComponent("trace.txt")
        var looser = c
        looser.sync.minConfidence = 0.05
        looser.quality.maxBrisque = 70
        _ = try await s.run(looser, trace: trace)
        let executed = try String(contentsOf: trace, encoding: .utf8).split(separator: "\n").map { $0.split(separator: "\t")[0] }
        #expect(executed.filter { $0 == "sync" }.count == 2 && executed.filter { $0 == "quality" }.count == 2, "\(executed)")
        let resync = try s.scored("sync"), requality = try s.scored("quality")
        #expect(resync.values.map(\.measured).reduce(0, +) == 0 && requality.values.map(\.measured).reduce(0, +) == 0,
                "scores were measured again: sync \(resync.values.map(\.measured)), quality \(requality.values.map(\.measured))")
        #expect(try String(contentsOf: s.output.appendingPathComponent("fileslist.txt"), encoding: .utf8).split(separator: "\n").count == 2)

        // An input disappears: its clip leaves the index; its files stay until pruned.
        try FileManager.default.removeItem(at: s.input.appendingPathComponent("speaker_b.mp4"))
        _ = try await s.run(looser)
        let remaining = try String(contentsOf: s.output.appendingPathComponent("fileslist.txt"), encoding: .utf8)
        #expect(!remaining.contains("speaker_b_shot") && remaining.split(separator: "\n").count == 1, "\(remaining)")
        let bFile = s.output.appendingPathComponent("high_visual_quality/speaker_b_shot_001_000.mp4")
        #expect(FileManager.default.fileExists(atPath: bFile.path))
        let removed = try s.engine(looser).collectOutputs(prune: true)
        #expect(removed.contains("high_visual_quality/speaker_b_shot_001_000.mp4") && removed.contains("aligned/speaker_b_shot_001_000.mp4"), "\(removed)")
        #expect(!FileManager.default.fileExists(atPath: bFile.path))
        #expect(FileManager.default.fileExists(atPath: s.output.appendingPathComponent("high_visual_quality/speaker_a_shot_001_000.mp4").path))
    }
}
