import Foundation
import Inference
import PipelineTestSupport
import Testing

/// The VAE against `golden/vae_small` (sd-vae-ft-mse structure, widths 32/32/64/64).
@Suite struct AutoencoderKLTests {
    static let small = AutoencoderKL.Config(blockOutChannels: [32, 32, 64, 64])

    /// In both layouts (channels-last is what CUDA runs); results come back contiguous either way.
    @Test(arguments: [false, true]) func encoderAndDecoderMatchTheReference(channelsLast: Bool) throws {
        let dir = try Golden.directory.appendingPathComponent("vae_small")
        let (vae, report) = try AutoencoderKL.load(SafeTensors(contentsOf: dir.appendingPathComponent("weights.safetensors")), config: Self.small,
                                                   channelsLast: channelsLast)
        #expect(report.parameters == 1_399_879 && report.tensors == 244, "\(report)")
        #expect(vae.channelsLast == channelsLast)
        let io = try SafeTensors(contentsOf: dir.appendingPathComponent("io.safetensors"))
        let image = try Tensor(io.float32("image"), shape: [2, 3, 64, 64])
        let (mean, logVariance) = try vae.encode(image)
        let dm = maxDifference(try mean.floats(), try io.float32("latent_mean"))
        let dv = maxDifference(try logVariance.floats(), try io.float32("latent_logvar"))
        let ds = maxDifference(try vae.latents(image).floats(), try io.float32("latent_scaled"))
        let encoderOut = try io.float32("act.encoder_out")
        let de = maxDifference(try vae.encoderOutput(image).floats(), encoderOut)
        #expect(dm <= 2e-3 && dv <= 2e-4 && ds <= 4e-4, "mean \(dm), logvar \(dv), scaled \(ds)")
        #expect(de <= 1e-4 * max(1, encoderOut.map(abs).max()!), "encoder output \(de)")

        let decoded = try vae.decode(Tensor(io.float32("decoder_latent_scaled"), shape: [2, 4, 8, 8]))
        let dd = maxDifference(try decoded.floats(), try io.float32("decoded"))
        #expect(dd <= 1e-4, "decoded \(dd)")
        #expect(try decoded.contiguous(channelsLast: false).floats() == decoded.floats() && decoded.shape == [2, 3, 64, 64])
        print("VAE on CPU (\(channelsLast ? "channels-last" : "contiguous")): latent mean \(dm), logvar \(dv), decoded \(dd)")
    }

    /// Older diffusers checkpoints name the attention query/key/value/proj_attn; they load the same.
    @Test func legacyAttentionNamesLoad() throws {
        let archive = try SafeTensors(contentsOf: Golden.directory.appendingPathComponent("vae_small/weights.safetensors"))
        var renamed: [String: HostTensor] = [:]
        for name in archive.names {
            let legacy = name.replacingOccurrences(of: ".to_q.", with: ".query.").replacingOccurrences(of: ".to_k.", with: ".key.")
                .replacingOccurrences(of: ".to_v.", with: ".value.").replacingOccurrences(of: ".to_out.0.", with: ".proj_attn.")
            renamed[legacy] = try archive.tensor(name)
        }
        #expect(renamed.keys.contains("decoder.mid_block.attentions.0.proj_attn.weight"))
        let (_, report) = try AutoencoderKL.load(TensorDictionary(renamed), config: Self.small)
        #expect(report.tensors == 244)
    }

    /// The full configuration declares 83,653,863 parameters.
    @Test func fullConfigurationParameterCount() throws {
        let recorder = ShapeRecorder()
        _ = try AutoencoderKL(WeightSource(.shapes(recorder)))
        #expect(recorder.parameters == 83_653_863, "\(recorder.parameters)")
    }
}
