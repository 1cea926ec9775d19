import Foundation
import Inference
import PipelineCore
import PipelineTestSupport
import Stages
import Testing

/// `LipsyncGenerator` (`pipelined infer`) end to end on the CPU with small random models saved in the
/// released files' formats: a 30-frame face clip with 8 faceless frames, driven by 2 s of speech.
@Suite(.serialized) struct InferTests {
    static func randomWeights(seed: UInt64, _ build: (WeightSource) throws -> Void) throws -> [String: HostTensor] {
        let generator = RandomWeights(seed: seed, keep: true)
        try build(WeightSource(.random(generator)))
        return generator.generated
    }

    @Test func generatesAVideoOfTheAudiosLengthAndPassesFacelessFramesThrough() throws {
        let root = try Fixtures.temporaryDirectory("infer")
        defer { try? FileManager.default.removeItem(at: root) }
        // Models: a small U-Net (its configuration in the safetensors metadata), a diffusers-style VAE
        // folder, and a tiny.pt-style Whisper checkpoint (dims + model_state_dict, decoder keys included).
        let unetURL = root.appendingPathComponent("unet.safetensors")
        try SafeTensors.write(Self.randomWeights(seed: 1) { _ = try UNet3DConditionModel($0, config: .init(blockOutChannels: [32, 64, 64, 64])) },
                              metadata: ["unet_config": "{\"block_out_channels\": [32, 64, 64, 64]}"], to: unetURL)
        let vaeFolder = root.appendingPathComponent("sd-vae-ft-mse")
        try FileManager.default.createDirectory(at: vaeFolder, withIntermediateDirectories: true)
        try "{\"block_out_channels\": [32, 32, 64, 64], \"latent_channels\": 4}".write(to: vaeFolder.appendingPathComponent("config.json"), atomically: true, encoding: .utf8)
        try SafeTensors.write(Self.randomWeights(seed: 2) { _ = try AutoencoderKL($0, config: .init(blockOutChannels: [32, 32, 64, 64])) },
                              to: vaeFolder.appendingPathComponent("diffusion_pytorch_model.safetensors"))
        var whisper = try Self.randomWeights(seed: 3) { _ = try WhisperAudioEncoder($0) }
        whisper["decoder.token_embedding.weight"] = try HostTensor([0, 0], shape: [1, 2])
        let whisperURL = root.appendingPathComponent("tiny.pt")
        try TorchCheckpoint.write(whisper, under: "model_state_dict",
                                  extras: ["dims.n_mels": .int(80), "dims.n_audio_ctx": .int(1500), "dims.n_audio_state": .int(384),
                                           "dims.n_audio_head": .int(6), "dims.n_audio_layer": .int(4)], to: whisperURL)
        let maskURL = root.appendingPathComponent("mask.png")
        try Fixtures.ffmpeg(["-f", "lavfi", "-i", "color=white:s=256x256", "-vf", "drawbox=x=20:y=120:w=216:h=120:color=black:t=fill",
                             "-frames:v", "1"], output: maskURL)

        // Inputs: 30 frames (8 of them without a face) and 2 s of speech from another clip.
        let video = root.appendingPathComponent("face.mp4"), speech = root.appendingPathComponent("speech.mp4")
        try FaceClips.write(video, frames: 30, gap: 12..<20)
        try TalkingClips.write(speech, frames: 50, offset: 0)
        let out = root.appendingPathComponent("out.mp4")

        var options = LipsyncGenerator.Options(video: video.path, audio: speech.path, output: out.path, unet: unetURL.path,
                                               vae: vaeFolder.path, whisper: whisperURL.path, mask: maskURL.path)
        options.steps = 1; options.resolution = 128; options.device = "cpu"
        let summary = try LipsyncGenerator(options).run()
        // The audio decides the length (to the nearest frame; the AAC decoder adds a little padding).
        let expectedFrames = (try AudioFile.samples(speech.path).count + 320) / 640
        #expect((50...51).contains(expectedFrames))
        #expect(summary.frames == expectedFrames && summary.videoFrames == 30 && summary.windows == (expectedFrames + 15) / 16, "\(summary)")
        // Output frames 12–19 and, looping backwards (output i shows source 59 − i), 40–47 show the faceless source frames 12–19.
        #expect(summary.facelessFrames == 16, "\(summary)")

        // The output: 25 fps, the audio's length, with its audio.
        let map = try #require(try ScanPass().run(path: out.path).frameMap)
        let reader = NormalizedReader(path: out.path, frameMap: map)
        #expect(reader.frameCount == expectedFrames)
        let audio = try reader.audioSamples()
        #expect(abs(audio.count - expectedFrames * 640) <= 640, "\(audio.count) audio samples")
        // Faceless frames are the input's (up to re-encoding); frames with a face changed around the mouth.
        func frames(_ path: String) throws -> [RGBImage] {
            let m = try #require(try ScanPass().run(path: path).frameMap)
            var out: [RGBImage] = []
            let converter = PackedPictureConverter(order: .rgb)
            try NormalizedReader(path: path, frameMap: m).read(video: { _, f in out.append(try converter.image(of: f)) }, audio: nil)
            return out
        }
        let input = try frames(video.path), output = try frames(out.path)
        func difference(_ a: RGBImage, _ b: RGBImage) -> Double {
            Double(zip(a.pixels, b.pixels).reduce(0) { $0 + abs(Int($1.0) - Int($1.1)) }) / Double(a.pixels.count)
        }
        let passed = difference(input[15], output[15]), looped = difference(input[15], output[44])
        let generated = difference(input[5], output[5])
        #expect(passed < 2 && looped < 2, "faceless frames differ by \(passed), \(looped) on average")
        #expect(generated > passed, "a face frame was not changed (\(generated))")
        print("infer: faceless frames differ by \(passed) / \(looped) grey levels, a face frame by \(generated)")
    }

    /// Without its model files, `infer` names each one and what it should be.
    @Test func missingModelFilesAreNamed() throws {
        let options = LipsyncGenerator.Options(video: "v.mp4", audio: "a.wav", output: "o.mp4", unet: "", vae: "/nonexistent/vae", whisper: "", mask: "")
        let error = #expect(throws: LipsyncGenerator.GeneratorError.self) { try LipsyncGenerator(options).checkFiles() }
        let text = error.map(String.init(describing:)) ?? ""
        for needed in ["--unet", "latentsync_unet.pt", "--vae /nonexistent/vae", "--whisper", "tiny.pt", "--mask", "mask.png", "nothing is downloaded"] {
            #expect(text.contains(needed), "\(text)")
        }
    }
}
