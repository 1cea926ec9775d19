import Foundation
import Inference
import PipelineTestSupport
import Testing

/// SyncNet v2 against `golden/syncnet_v2` on the CPU backend (tolerance of the golden README:
/// |Δ| ≤ 1e-3 · max(1, max |ref|)).
@Suite struct SyncNetV2Tests {
    static func withinTolerance(_ ours: [Float], _ reference: [Float]) -> (ok: Bool, worst: Float) {
        let scale = max(1, reference.map(abs).max() ?? 1)
        let worst = maxDifference(ours, reference)
        return (ours.count == reference.count && worst <= 1e-3 * scale, worst)
    }

    @Test func forwardMatchesTheReference() throws {
        let dir = try Golden.directory.appendingPathComponent("syncnet_v2")
        let (model, report) = try SyncNetV2.load(SafeTensors(contentsOf: dir.appendingPathComponent("weights.safetensors")))
        #expect(report.parameters == 13_631_616 && report.ignored.count == 14)
        let io = try SafeTensors(contentsOf: dir.appendingPathComponent("io.safetensors"))

        let audio = try Tensor(io.float32("aud_input"), shape: [2, 1, 13, 20])
        let audioActivations = try model.audioCNN.activations(audio)
        for i in [3, 7, 17, 20] {
            let check = Self.withinTolerance(try audioActivations[i].floats(), try io.float32("act.netcnnaud.\(i)"))
            #expect(check.ok, "netcnnaud.\(i) differs by up to \(check.worst)")
        }
        let audioOut = Self.withinTolerance(try model.forwardAudio(audio).floats(), try io.float32("forward_aud"))
        #expect(audioOut.ok, "forward_aud differs by up to \(audioOut.worst)")

        let lip = try Tensor(io.uint8("lip_input_u8").map(Float.init), shape: [2, 3, 5, 224, 224])
        let lipOut = Self.withinTolerance(try model.forwardLip(lip).floats(), try io.float32("forward_lip"))
        #expect(lipOut.ok, "forward_lip differs by up to \(lipOut.worst)")
        print("SyncNet v2 on CPU: forward_aud max |Δ| \(audioOut.worst), forward_lip max |Δ| \(lipOut.worst)")
    }

    /// A checkpoint with a key renamed, one dropped or one reshaped fails with the key's name.
    @Test func strictLoadingOfTheCheckpoint() throws {
        let archive = try SafeTensors(contentsOf: Golden.directory.appendingPathComponent("syncnet_v2/weights.safetensors"))
        var tensors = Dictionary(uniqueKeysWithValues: try archive.names.map { ($0, try archive.tensor($0)) })
        var missing = tensors
        missing["netfclip.3.bias"] = nil
        #expect(throws: WeightError.missing(key: "netfclip.3.bias", similar: ["netfclip.3.weight"])) {
            try SyncNetV2.load(SafeTensors(data: SafeTensors.serialize(missing)))
        }
        var extra = tensors
        extra["netfclip.4.weight"] = try HostTensor([1], shape: [1])
        #expect(throws: WeightError.unexpected(keys: ["netfclip.4.weight"])) { try SyncNetV2.load(SafeTensors(data: SafeTensors.serialize(extra))) }
        let bias = try #require(tensors["netcnnaud.0.bias"])
        tensors["netcnnaud.0.bias"] = try HostTensor(dtype: bias.dtype, shape: [2, 32], bytes: bias.bytes)
        #expect(throws: WeightError.shapeMismatch(key: "netcnnaud.0.bias", expected: [64], found: [2, 32])) {
            try SyncNetV2.load(SafeTensors(data: SafeTensors.serialize(tensors)))
        }
    }
}

extension SyncNetV2Tests {
    /// The offset search on golden/syncnet_v2's evaluation data: offset 3, argmin 12, minimum
    /// distance 5.227066, confidence 7.697222, and every distance within tolerance.
    @Test func evaluationMatchesTheReference() throws {
        let dir = try Golden.directory.appendingPathComponent("syncnet_v2")
        let (model, _) = try SyncNetV2.load(SafeTensors(contentsOf: dir.appendingPathComponent("weights.safetensors")))
        let data = try SafeTensors(contentsOf: dir.appendingPathComponent("eval.safetensors"))
        let result = try model.evaluate(frames: data.uint8("eval_frames_u8").map(Float.init), frameCount: 40,
                                        mfcc: data.float32("eval_mfcc"), mfccColumns: 160)
        #expect(result.offset == 3 && result.distances.count == 35)
        #expect(abs(result.minDistance - 5.227066) <= 1e-3 * 5.227066 && abs(result.confidence - 7.697222) <= 1e-3 * 7.697222,
                "min distance \(result.minDistance), confidence \(result.confidence)")
        let dists = Self.withinTolerance(result.distances.flatMap { $0 }, try data.float32("dists"))
        #expect(dists.ok, "dists differ by up to \(dists.worst)")
        let means = Self.withinTolerance(result.meanDistances, try data.float32("mean_dists"))
        #expect(means.ok, "mean_dists differ by up to \(means.worst)")
        print("SyncNet v2 evaluation on CPU: offset \(result.offset), min distance \(result.minDistance), confidence \(result.confidence)")
    }
}
