import Foundation
import Inference
import PipelineTestSupport
import Testing

/// hyperIQA against `golden/hyperiqa` on the CPU backend (scores |Δ| ≤ 1e-2, intermediates
/// |Δ| ≤ 1e-3 · max(1, max |ref|)).
@Suite struct HyperIQATests {
    static func check(_ ours: Tensor, _ reference: [Float], _ name: String) throws -> Float {
        let values = try ours.floats()
        let worst = maxDifference(values, reference)
        #expect(worst <= 1e-3 * max(1, reference.map(abs).max() ?? 1), "\(name) differs by up to \(worst)")
        return worst
    }

    @Test func scoresMatchTheReference() throws {
        let dir = try Golden.directory.appendingPathComponent("hyperiqa")
        let (model, report) = try HyperIQA.load(SafeTensors(contentsOf: dir.appendingPathComponent("weights.safetensors")))
        #expect(report.parameters == 27_375_369, "\(report.parameters) parameters")
        let io = try SafeTensors(contentsOf: dir.appendingPathComponent("io.safetensors"))

        // The preprocessing (centre crop of the 256×256 frames, ImageNet normalisation) reproduces `input`.
        let frames = try io.uint8("frames_u8"), reference = try io.float32("input")
        var input: [Float] = []
        for i in 0..<3 {
            input += frames[(i * 256 * 256 * 3)..<((i + 1) * 256 * 256 * 3)].withUnsafeBufferPointer { HyperIQA.input(rgb: $0, width: 256, height: 256) }
        }
        let inputError = maxDifference(input, reference)
        #expect(inputError <= 1e-6, "input differs by \(inputError)")

        let out = try model.forward(Tensor(reference, shape: [3, 3, 224, 224]))
        let scores = try out.scores.floats(), expected = try io.float32("scores")
        let scoreError = maxDifference(scores, expected)
        #expect(scoreError <= 1e-2, "scores \(scores) vs \(expected)")
        _ = try Self.check(out.targetInput, io.float32("target_in_vec"), "target_in_vec")
        _ = try Self.check(out.hyperFeature, io.float32("hyper_in_feat"), "hyper_in_feat")
        _ = try Self.check(out.layer4Mean, io.float32("backbone_layer4_channel_mean"), "layer4 mean")
        for k in 1...5 {
            _ = try Self.check(out.targetWeights[k - 1], io.float32("paras.target_fc\(k)w"), "target_fc\(k)w")
            _ = try Self.check(out.targetBiases[k - 1], io.float32("paras.target_fc\(k)b"), "target_fc\(k)b")
        }
        for k in 1...4 { _ = try Self.check(out.hidden[k - 1], io.float32("target_q\(k)"), "target_q\(k)") }
        print("hyperIQA on CPU: scores \(scores) (max |Δ| \(scoreError))")
    }
}
