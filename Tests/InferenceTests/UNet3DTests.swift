import Foundation
import Inference
import PipelineTestSupport
import Testing

/// LatentSync's U-Net against `golden/unet3d_small` (stage-2 structure, widths 32/64/64/64).
@Suite struct UNet3DTests {
    static var small: UNet3DConditionModel.Config { UNet3DConditionModel.Config(blockOutChannels: [32, 64, 64, 64]) }

    /// The stage-2 configuration declares 1,267,099,844 parameters and 40 positional tables in 1246 tensors.
    @Test func stage2ParameterCount() throws {
        let recorder = ShapeRecorder()
        _ = try UNet3DConditionModel(WeightSource(.shapes(recorder)))
        #expect(recorder.parameters == 1_267_099_844 && recorder.shapes.count == 1246, "\(recorder.parameters) in \(recorder.shapes.count)")
        let small = ShapeRecorder()
        _ = try UNet3DConditionModel(WeightSource(.shapes(small)), config: Self.small)
        #expect(small.parameters == 5_321_380 && small.shapes.count == 1244)
    }

    /// In both activation layouts: contiguous (the CPU's default) and channels-last (CUDA's default).
    @Test(arguments: [false, true]) func noisePredictionMatchesTheReference(channelsLast: Bool) throws {
        let dir = try Golden.directory.appendingPathComponent("unet3d_small")
        let (unet, report) = try UNet3DConditionModel.load(SafeTensors(contentsOf: dir.appendingPathComponent("weights.safetensors")), config: Self.small,
                                                           channelsLast: channelsLast)
        #expect(report.parameters == 5_321_380 && unet.channelsLast == channelsLast)
        let io = try SafeTensors(contentsOf: dir.appendingPathComponent("io.safetensors"))
        let sample = try io.float32("sample"), context = try io.float32("encoder_hidden_states")
        var recorded: [String: Tensor] = [:]
        let output = try unet(Tensor(sample, shape: [2, 13, 16, 16, 16]), timestep: 501, context: Tensor(context, shape: [32, 50, 384])) { recorded[$0] = $1 }
        let d = maxDifference(try output.floats(), try io.float32("output"))
        #expect(d <= 1e-4, "output differs by \(d)")
        let stored = Set(io.names)
        for (name, value) in recorded.sorted(by: { $0.key < $1.key }) where stored.contains(name) {
            let reference = try io.float32(name)
            let worst = maxDifference(try value.floats(), reference)
            #expect(worst <= 2e-4 * max(1, reference.map(abs).max()!), "\(name) differs by \(worst)")
        }
        #expect(stored.filter { $0.hasPrefix("act.") }.allSatisfy { recorded[$0] != nil }, "\(recorded.keys.sorted())")

        // A short last window: 10 frames.
        var sample10: [Float] = [], context10: [Float] = []
        let plane = 16 * 256, tokens = 50 * 384
        for b in 0..<2 {
            for c in 0..<13 {
                let start: Int = (b * 13 + c) * plane
                sample10 += sample[start..<(start + 10 * 256)]
            }
            let first: Int = b * 16 * tokens
            context10 += context[first..<(first + 10 * tokens)]
        }
        let output10 = try unet(Tensor(sample10, shape: [2, 13, 10, 16, 16]), timestep: 501, context: Tensor(context10, shape: [20, 50, 384]))
        let d10 = maxDifference(try output10.floats(), try io.float32("output_10frames"))
        #expect(d10 <= 1e-4, "10-frame output differs by \(d10)")
        print("U-Net on CPU (\(channelsLast ? "channels-last" : "contiguous")): output \(d), 10 frames \(d10)")
    }

    /// DeepCache: a cached step given the full step's own inputs reproduces its output (the cache holds
    /// exactly what the skipped blocks computed); with another timestep it differs; 7 of 20 steps run fully.
    @Test func deepCacheReusesTheSkippedBlocks() throws {
        let dir = try Golden.directory.appendingPathComponent("unet3d_small")
        let unet = try UNet3DConditionModel.load(SafeTensors(contentsOf: dir.appendingPathComponent("weights.safetensors")), config: Self.small).0
        let io = try SafeTensors(contentsOf: dir.appendingPathComponent("io.safetensors"))
        let sample = try Tensor(io.float32("sample"), shape: [2, 13, 16, 16, 16]), context = try Tensor(io.float32("encoder_hidden_states"), shape: [32, 50, 384])
        let cache = UNet3DConditionModel.DeepCache(interval: 3)
        let full = try unet(sample, timestep: 501, context: context, cache: cache, step: 0).floats()
        let cached = try unet(sample, timestep: 501, context: context, cache: cache, step: 1).floats()
        #expect(maxDifference(cached, full) <= 1e-6 && cache.fullSteps == 1 && cache.cachedSteps == 1)
        let later = try unet(sample, timestep: 301, context: context, cache: cache, step: 2).floats()
        let recomputed = try unet(sample, timestep: 301, context: context).floats()
        #expect(maxDifference(later, recomputed) > 1e-3, "a cached step at another timestep is an approximation, not a recomputation")
        let steps = (0..<20).filter { $0 % 3 == 0 }.count
        #expect(steps == 7)
    }

    /// CUDA graphs are a CUDA matter: on the CPU `Graphs` runs every forward normally (same values, the
    /// same DeepCache bookkeeping), and a CPU `LipsyncWindow` has none. (On CUDA, `InferenceCheck parity
    /// --models graphs` checks that replays equal forwards run op by op.)
    @Test func graphsRunNormallyOnTheCPU() throws {
        let dir = try Golden.directory.appendingPathComponent("unet3d_small")
        let unet = try UNet3DConditionModel.load(SafeTensors(contentsOf: dir.appendingPathComponent("weights.safetensors")), config: Self.small).0
        let io = try SafeTensors(contentsOf: dir.appendingPathComponent("io.safetensors"))
        let sample = try Tensor(io.float32("sample"), shape: [2, 13, 16, 16, 16]), context = try Tensor(io.float32("encoder_hidden_states"), shape: [32, 50, 384])
        let graphs = UNet3DConditionModel.Graphs(unet)
        let (direct, through) = (UNet3DConditionModel.DeepCache(interval: 3), UNet3DConditionModel.DeepCache(interval: 3))
        for (step, t) in [(0, 501), (1, 401), (2, 301)] {
            let expected = try unet(sample, timestep: t, context: context, cache: direct, step: step).floats()
            #expect(try graphs(sample, timestep: t, context: context, cache: through, step: step).floats() == expected, "step \(step)")
        }
        #expect(graphs.eager == 3 && graphs.replays == 0 && graphs.captures == 0 && graphs.failures.isEmpty)
        #expect(through.fullSteps == direct.fullSteps && through.cachedSteps == direct.cachedSteps && through.cachedSteps == 2)
        let window = LipsyncWindow(unet: unet, vae: try AutoencoderKL(WeightSource(.random(RandomWeights(seed: 1))), config: .init(blockOutChannels: [32, 32, 64, 64])),
                                   scheduler: DDIMScheduler(steps: 2), device: .cpu)
        #expect(window.graphs == nil)
    }
}
