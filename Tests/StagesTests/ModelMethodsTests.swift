import Foundation
import Inference
import PipelineCore
import PipelineTestSupport
import Stages
import Testing

/// Stages 6 and 7 with their model-backed methods, end to end on the CPU backend, with weights the
/// test generates (random, in the reference's file formats: torch.save state dicts).
@Suite(.serialized) struct ModelMethodsTests {
    /// Random weights of a model, with BatchNorm's `num_batches_tracked` as the reference checkpoints carry them.
    static func randomStateDict(seed: UInt64, _ build: (WeightSource) throws -> Void) throws -> [String: HostTensor] {
        let generator = RandomWeights(seed: seed, keep: true)
        try build(WeightSource(.random(generator)))
        var tensors = generator.generated
        for key in tensors.keys where key.hasSuffix(".running_var") {
            tensors[String(key.dropLast("running_var".count)) + "num_batches_tracked"] = try HostTensor(dtype: .i64, shape: [], bytes: Data(count: 8))
        }
        return tensors
    }

    static func talkingInputs(_ name: String) throws -> (root: URL, input: URL, output: URL) {
        let root = try Fixtures.temporaryDirectory(name)
        let input = root.appendingPathComponent("raw"), output = root.appendingPathComponent("data")
        try FileManager.default.createDirectory(at: input, withIntermediateDirectories: true)
        try TalkingClips.write(input.appendingPathComponent("speaker_a.mp4"), frames: 135, offset: 4)
        try TalkingClips.write(input.appendingPathComponent("speaker_b.mp4"), frames: 135, offset: -3)
        return (root, input, output)
    }

    static func run(_ c: PipelineConfiguration, input: URL, output: URL) async throws -> PipelineStore {
        let store = try PipelineStore(path: output.appendingPathComponent("pipelined.sqlite").path)
        let engine = Engine(store: store, configuration: c, stages: StageRegistry.stages(for: c),
                            options: EngineOptions(inputDirectory: input, outputDirectory: output, jobs: 2, version: "test"), reporter: RecordingReporter())
        _ = try await engine.run()
        try DatasetIndex.write(store: store, configuration: c, outputDirectory: output)
        return store
    }

    static func pieces(_ store: PipelineStore, _ stage: String) throws -> [(state: ItemState, reason: String?, pieces: [[String: Any]])] {
        try store.currentResults(stage: stage).values.map { row in
            let m = try JSONSerialization.jsonObject(with: Data((row.metrics ?? "{}").utf8)) as! [String: Any]
            return (row.state, row.reason, m["pieces"] as? [[String: Any]] ?? [])
        }
    }

    /// `sync.method = "syncnet_v2"` and `quality.method = "hyperiqa"` with `syncnet_v2.model` and
    /// `koniq_pretrained.pkl` look-alikes: every clip is measured at all 31 offsets, scored on 3 frames
    /// and (with permissive thresholds) published.
    @Test func syncnetV2AndHyperIQARunEndToEnd() async throws {
        let (root, input, output) = try Self.talkingInputs("models")
        defer { try? FileManager.default.removeItem(at: root) }
        let weights = root.appendingPathComponent("weights")
        try FileManager.default.createDirectory(at: weights, withIntermediateDirectories: true)
        let syncnet = weights.appendingPathComponent("syncnet_v2.model"), iqa = weights.appendingPathComponent("koniq_pretrained.pkl")
        try TorchCheckpoint.write(Self.randomStateDict(seed: 1) { _ = try SyncNetV2($0) }, to: syncnet)
        try TorchCheckpoint.write(Self.randomStateDict(seed: 2) { _ = try HyperIQA($0) }, to: iqa)

        var c = PipelineConfiguration()
        c.broken.minDurationSeconds = 1
        c.inference.device = "cpu"
        c.sync.method = "syncnet_v2"
        c.sync.syncnetV2Weights = syncnet.path
        c.sync.syncnetV2MinConfidence = -1_000
        c.sync.maxOffset = 15
        c.quality.method = "hyperiqa"
        c.quality.hyperiqaWeights = iqa.path
        c.quality.minHyperiqa = -1_000_000
        let checks = ModelMethods.check(c)
        #expect(checks.count == 2 && checks.allSatisfy { $0.problem == nil }, "\(checks.map { $0.problem ?? $0.detail })")

        let store = try await Self.run(c, input: input, output: output)
        let sync = try Self.pieces(store, "sync"), quality = try Self.pieces(store, "quality")
        #expect(sync.count == 2 && sync.allSatisfy { $0.state == .done }, "\(sync.map { $0.reason ?? $0.state.rawValue })")
        for result in sync {
            for piece in result.pieces {
                let m = try #require(piece["sync"] as? [String: Any])
                let scores = m["scores"] as? [Double] ?? []
                #expect(scores.count == 31 && scores.allSatisfy(\.isFinite), "\(m)")
                // offset and confidence follow from the distances as upstream computes them.
                let best = scores.indices.min { scores[$0] < scores[$1] }!
                #expect(m["offset"] as? Int == best - 15)
                #expect(abs((m["confidence"] as! Double) - (scores.sorted()[15] - scores[best])) < 1e-4)
            }
        }
        #expect(quality.count == 2 && quality.allSatisfy { $0.state == .done }, "\(quality.map { $0.reason ?? $0.state.rawValue })")
        for result in quality {
            for piece in result.pieces {
                let frames = piece["qualityFrames"] as? [Double] ?? piece["quality_frames"] as? [Double] ?? []
                #expect(frames.count == 3 && frames.allSatisfy(\.isFinite), "\(piece)")
            }
        }
        let published = try String(contentsOf: output.appendingPathComponent("fileslist.txt"), encoding: .utf8).split(separator: "\n")
        #expect(published.count == 2)
    }

    /// `sync.method = "stable_syncnet"` with a small configuration carried in the checkpoint's metadata
    /// (as `pipelined train syncnet` writes them): cosine distances at every offset, offset and
    /// confidence derived from them.
    @Test func stableSyncNetRunsEndToEnd() async throws {
        let (root, input, output) = try Self.talkingInputs("stable")
        defer { try? FileManager.default.removeItem(at: root) }
        let shipped = StableSyncNet.Config.syncnet16PixelAttention
        var config = shipped
        config.audio.blockOutChannels = shipped.audio.blockOutChannels.map { _ in 32 }
        config.visual.blockOutChannels = shipped.visual.blockOutChannels.map { _ in 32 }
        let weights = root.appendingPathComponent("syncnet.safetensors")
        try SafeTensors.write(Self.randomStateDict(seed: 3) { _ = try StableSyncNet($0, config: config) },
                              metadata: [StableSyncNet.Config.metadataKey: config.json()], to: weights)

        try Self.expectCosineSync(await Self.run(Self.stableSyncNetConfiguration(weights: weights), input: input, output: output))
    }

    /// A pipeline that measures sync with the StableSyncNet checkpoint at `weights` on CPU and keeps
    /// every piece whatever its confidence, with the whole ±15 frame search allowed.
    static func stableSyncNetConfiguration(weights: URL) -> PipelineConfiguration {
        var c = PipelineConfiguration()
        c.broken.minDurationSeconds = 1
        c.inference.device = "cpu"
        c.sync.method = "stable_syncnet"
        c.sync.stableSyncnetWeights = weights.path
        c.sync.stableSyncnetMinConfidence = -1
        c.sync.maxOffset = 15
        return c
    }

    /// The offsets stage 6 measured, per source (relative path), one per aligned piece.
    static func syncOffsets(_ store: PipelineStore) throws -> [String: [Int]] {
        let sources = Dictionary(uniqueKeysWithValues: try store.activeSources().map { ($0.id!, $0.relativePath) })
        var offsets: [String: [Int]] = [:]
        for row in try store.currentResults(stage: "sync").values {
            let path = try #require(sources[row.sourceId])
            let m = try JSONSerialization.jsonObject(with: Data((row.metrics ?? "{}").utf8)) as! [String: Any]
            for piece in m["pieces"] as? [[String: Any]] ?? [] {
                offsets[path, default: []].append(try #require((piece["sync"] as? [String: Any])?["offset"] as? Int))
            }
        }
        return offsets
    }

    /// Both talking clips measured by `stable_syncnet`: 31 cosine distances in [0, 1] each, the offset at
    /// their minimum, the confidence = median − minimum.
    static func expectCosineSync(_ store: PipelineStore, clips: Int = 2) throws {
        let sync = try pieces(store, "sync")
        #expect(sync.count == clips && sync.allSatisfy { $0.state == .done }, "\(sync.map { $0.reason ?? $0.state.rawValue })")
        for piece in sync.flatMap(\.pieces) {
            let m = try #require(piece["sync"] as? [String: Any])
            let scores = m["scores"] as? [Double] ?? []
            #expect(scores.count == 31 && scores.allSatisfy { $0 >= -1e-6 && $0 <= 1 + 1e-6 }, "cosine distances: \(scores)")
            let best = scores.indices.min { scores[$0] < scores[$1] }!
            #expect(m["offset"] as? Int == best - 15)
            #expect(abs((m["confidence"] as! Double) - (scores.sorted()[15] - scores[best])) < 1e-9)
        }
    }

    /// A wrong weights file fails the stage with the file's problem, and `check` says so before a run.
    @Test func missingOrMismatchedWeightsAreClearErrors() throws {
        var c = PipelineConfiguration()
        c.sync.method = "syncnet_v2"
        c.sync.syncnetV2Weights = "/nonexistent/syncnet_v2.model"
        let missing = ModelMethods.check(c)
        #expect(missing.first?.problem?.contains("/nonexistent/syncnet_v2.model") == true && missing.first?.problem?.contains("nothing is downloaded") == true)
        #expect(throws: ConfigurationError.self) { try PipelineConfiguration(toml: "[sync]\nmethod = \"syncnet_v2\"\n") }
    }
}
