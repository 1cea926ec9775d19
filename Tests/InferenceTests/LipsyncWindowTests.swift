import Foundation
import Inference
import PipelineTestSupport
import Testing

/// One 16-frame generator window against `golden/lipsync_small` (unet3d_small, vae_small, 5 DDIM steps, guidance 1.5).
@Suite struct LipsyncWindowTests {

    @Test func windowMatchesTheReference() throws {
        let golden = try Golden.directory
        let unet = try UNet3DConditionModel.load(SafeTensors(contentsOf: golden.appendingPathComponent("unet3d_small/weights.safetensors")),
                                                 config: UNet3DConditionModel.Config(blockOutChannels: [32, 64, 64, 64])).0
        let vae = try AutoencoderKL.load(SafeTensors(contentsOf: golden.appendingPathComponent("vae_small/weights.safetensors")),
                                         config: AutoencoderKL.Config(blockOutChannels: [32, 32, 64, 64])).0
        let io = try SafeTensors(contentsOf: golden.appendingPathComponent("lipsync_small/io.safetensors"))
        let window = LipsyncWindow(unet: unet, vae: vae, scheduler: DDIMScheduler(steps: 5))
        #expect(window.scheduler.timesteps.map(Int64.init) == (try io.tensor("timesteps").int64s()))
        let mask = LipsyncWindow.Mask(u8: try io.uint8("mask_u8"), size: 128)
        #expect(mask.latent == (try io.float32("mask_latent")))
        let pixels = try io.uint8("frames_u8"), frameSize = 128 * 128 * 3
        let frames = (0..<16).map { Array(pixels[($0 * frameSize)..<(($0 + 1) * frameSize)]) }
        var trace = LipsyncWindow.Trace()
        let output = try window.generate(frames: frames, mask: mask, audio: Tensor(io.float32("audio_embeds"), shape: [16, 50, 384]),
                                         noise: io.float32("init_noise"), trace: &trace)
        let dm = maxDifference(try trace.maskedLatents!.floats(), try io.float32("masked_image_latents"))
        let dr = maxDifference(try trace.referenceLatents!.floats(), try io.float32("ref_latents"))
        let dn = maxDifference(try trace.firstNoisePrediction!.floats(), try io.float32("noise_pred_step0"))
        #expect(dm <= 1e-4 && dr <= 1e-4 && dn <= 1e-4, "latents \(dm) \(dr), noise prediction \(dn)")
        let allLatents = try trace.latents.flatMap { try $0.floats() }
        let dl = maxDifference(allLatents, try io.float32("latents"))
        #expect(dl <= 5e-4, "latents over the steps \(dl)")
        let dout = maxDifference(try output.floats(), try io.float32("output"))
        #expect(dout <= 2e-4, "output \(dout)")
        let ours = try LipsyncWindow.frames(output).flatMap { $0 }, expected = try io.uint8("output_u8")
        let off = zip(ours, expected).filter { $0 != $1 }
        #expect(off.allSatisfy { abs(Int($0.0) - Int($0.1)) <= 1 } && off.count <= expected.count / 2000, "\(off.count) u8 values differ")
        print("lip-sync window on CPU: latents \(dl), output \(dout), \(off.count) of \(expected.count) u8 values off by 1")
    }
}
