import Foundation
import Inference
import PipelineTestSupport
import Testing

/// StableSyncNet against `golden/stable_syncnet` (reduced widths, the shipped structure) on the CPU
/// backend; tolerances of the golden README.
@Suite struct StableSyncNetTests {
    static let reduced = StableSyncNet.Config(
        audio: .init(inChannels: 1, blockOutChannels: [32, 64, 96, 128, 128, 160, 192],
                     downsampleFactors: [.pair(2, 1), .both(2), .both(2), .both(1), .both(2), .both(2), .pair(2, 3)],
                     attentionBlocks: [false, false, false, true, true, false, false]),
        visual: .init(inChannels: 48, blockOutChannels: [32, 64, 96, 96, 128, 160, 192, 192],
                      downsampleFactors: [.pair(1, 2), .both(2), .both(2), .both(2), .both(2), .both(2), .both(2), .both(2)],
                      attentionBlocks: [false, false, false, false, true, true, false, false]))

    /// The released configuration declares 401,306,080 parameters in 266 tensors (counted without allocating them).
    @Test func shippedConfigurationHasTheReferenceParameterCount() throws {
        let full = try StableSyncNet.parameters(of: .syncnet16PixelAttention)
        #expect(full.parameters == 401_306_080 && full.shapes.count == 266, "\(full.parameters) parameters in \(full.shapes.count) tensors")
        let reduced = try StableSyncNet.parameters(of: Self.reduced)
        #expect(reduced.parameters == 7_730_464 && reduced.shapes.count == 264)
        // A shortcut exists exactly where channels change: the reduced audio stage 4 (128 → 128) has none.
        #expect(!reduced.shapes.contains { $0.key.hasPrefix("audio_encoder.down_blocks.5.conv_shortcut") })
        #expect(full.shapes.contains { $0.key == "audio_encoder.down_blocks.5.conv_shortcut.weight" })
    }

    @Test func forwardMatchesTheReference() throws {
        let dir = try Golden.directory.appendingPathComponent("stable_syncnet")
        let (model, report) = try StableSyncNet.load(SafeTensors(contentsOf: dir.appendingPathComponent("weights.safetensors")), config: Self.reduced)
        #expect(report.parameters == 7_730_464 && report.tensors == 264)
        let io = try SafeTensors(contentsOf: dir.appendingPathComponent("io.safetensors"))

        let mel = try Tensor(io.float32("audio_input"), shape: [2, 1, 80, 52])
        // ((u / 255) − 0.5) / 0.5, each step rounded to float32 as the reference does.
        let frames = try Tensor(io.uint8("visual_input_u8").map { (Float($0) / 255 - 0.5) / 0.5 }, shape: [2, 48, 128, 256])

        let audioActivations = try model.audioEncoder.activations(mel)
        for (i, act) in audioActivations.enumerated() {
            let reference = try io.float32("act.audio_encoder.down_blocks.\(i)")
            let worst = maxDifference(try act.floats(), reference)
            #expect(worst <= 1e-3 * max(1, reference.map(abs).max()!), "audio down_blocks.\(i) differs by up to \(worst)")
        }
        let visualActivations = try model.visualEncoder.activations(frames)
        for i in 3...9 {
            let reference = try io.float32("act.visual_encoder.down_blocks.\(i)")
            let worst = maxDifference(try visualActivations[i].floats(), reference)
            #expect(worst <= 1e-3 * max(1, reference.map(abs).max()!), "visual down_blocks.\(i) differs by up to \(worst)")
        }

        let v = try model.visualEmbedding(frames), a = try model.audioEmbedding(mel)
        let dv = maxDifference(try v.floats(), try io.float32("visual_embeds"))
        let da = maxDifference(try a.floats(), try io.float32("audio_embeds"))
        let cos = try StableSyncNet.cosine(v, a).floats()
        let dc = maxDifference(cos, try io.float32("cos_sim"))
        let labels = try io.float32("labels")
        let losses = zip(cos, labels).map { c, y in -(y * max(log(c), -100) + (1 - y) * max(log(1 - c), -100)) }
        let dl = abs(losses.reduce(0, +) / Float(losses.count) - (try io.float32("bce_loss")[0]))
        #expect(dv <= 1e-4 && da <= 1e-4, "embeddings differ by \(dv) (visual), \(da) (audio)")
        #expect(dc <= 1e-4 && dl <= 1e-4, "cosine differs by \(dc), loss by \(dl)")
        print("StableSyncNet on CPU: visual \(dv), audio \(da), cos \(dc), loss \(dl)")
    }

    /// A wrong configuration (here: the full widths) fails on the first differing key, by name, naming the file.
    @Test func aCheckpointOfAnotherConfigurationIsRefusedByKey() throws {
        let archive = try SafeTensors(contentsOf: Golden.directory.appendingPathComponent("stable_syncnet/weights.safetensors"))
        #expect(throws: WeightError.shapeMismatch(key: "audio_encoder.down_blocks.2.conv1.weight", expected: [128, 64, 3, 3], found: [96, 64, 3, 3], file: archive.file)) {
            _ = try StableSyncNet.load(archive, config: .syncnet16PixelAttention)
        }
    }
}
