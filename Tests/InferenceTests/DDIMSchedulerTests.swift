import Foundation
import Inference
import PipelineTestSupport
import Testing

/// The DDIM scheduler against `golden/ddim` (diffusers 0.32.2 with LatentSync's configuration).
@Suite struct DDIMSchedulerTests {

    @Test func scheduleTimestepsStepsAndGuidanceMatchTheReference() throws {
        let golden = try SafeTensors(contentsOf: Golden.directory.appendingPathComponent("ddim/ddim.safetensors"))
        let twenty = DDIMScheduler(steps: 20)
        #expect(maxDifference(twenty.alphasCumprod, try golden.float32("alphas_cumprod")) <= 2e-6)
        for steps in [20, 25, 5] {
            #expect(DDIMScheduler(steps: steps).timesteps.map(Int64.init) == (try golden.tensor("timesteps_\(steps)").int64s()))
        }
        let shape = [1, 4, 2, 8, 8]
        let sample = try Tensor(golden.float32("sample"), shape: shape), noise = try Tensor(golden.float32("model_output"), shape: shape)
        var worst: Float = 0
        for (scheduler, t, name, withOriginal) in [(twenty, 951, "step20_t951", true), (twenty, 1, "step20_t1", true), (DDIMScheduler(steps: 25), 961, "step25_t961", false)] {
            let (previous, original) = try scheduler.step(noise, at: t, sample: sample)
            worst = max(worst, maxDifference(try previous.floats(), try golden.float32("\(name)_prev_sample")))
            if withOriginal { worst = max(worst, maxDifference(try original.floats(), try golden.float32("\(name)_pred_original_sample"))) }
        }
        let guided = try DDIMScheduler.guided(unconditional: Tensor(golden.float32("cfg_uncond"), shape: shape),
                                              conditional: Tensor(golden.float32("cfg_cond"), shape: shape), scale: 1.5)
        worst = max(worst, maxDifference(try guided.floats(), try golden.float32("cfg_out")))
        #expect(worst <= 1e-5, "steps and guidance differ by up to \(worst)")
    }
}
