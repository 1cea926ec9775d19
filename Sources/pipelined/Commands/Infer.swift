import ArgumentParser
import Foundation
import PipelineCore
import Stages

extension Pipelined {
    struct Infer: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Lip-sync a video to an audio track with LatentSync's generator (U-Net, VAE, Whisper-tiny).",
            discussion: """
            The video is read at 25 fps and every frame aligned as stage 5 aligns; the audio decides the
            length (the video loops forward and backward when the audio is longer). Frames without a face
            are passed through unchanged. Nothing is downloaded: point the options at LatentSync's files.
            """)

        @Option(name: .long, help: "Input video (any FFmpeg-readable file; never modified).") var video: String
        @Option(name: .long, help: "Audio to speak (any FFmpeg-readable file with an audio stream).") var audio: String
        @Option(name: .long, help: "Output video (H.264 + AAC), written atomically.") var out: String
        @Option(name: .long, help: "latentsync_unet.pt (or a safetensors U-Net).") var unet = ""
        @Option(name: .long, help: "sd-vae-ft-mse: a diffusers folder or its safetensors file.") var vae = ""
        @Option(name: .long, help: "Whisper's tiny.pt.") var whisper = ""
        @Option(name: .long, help: "LatentSync's mask.png (white = keep, black = generate).") var mask = ""
        @Option(name: .long, help: "DDIM steps.") var steps = 20
        @Option(name: .long, help: "Classifier-free guidance scale (1 turns it off in effect).") var guidance = 1.5
        @Option(name: .long, help: "Seed of the initial noise.") var seed: UInt64 = 1247
        @Option(name: .long, help: "Face resolution: 256 or 512 (the U-Net's training resolution).") var resolution = 256
        @Option(name: .long, help: "auto, cpu or cuda:N.") var device = "auto"
        @Option(name: .long, help: "DeepCache interval (LatentSync's scripts use 3; 0 = off).") var deepcache = 0

        func validate() throws {
            guard [256, 512].contains(resolution) || (resolution >= 64 && resolution % 64 == 0) else {
                throw ValidationError("--resolution must be 256 or 512 (or another multiple of 64 for small test models)")
            }
            guard (1...1000).contains(steps) else { throw ValidationError("--steps must be 1…1000") }
            guard guidance.isFinite, guidance >= 1 else {
                throw ValidationError("--guidance must be a finite number ≥ 1 (LatentSync's scripts use 1.5; 1 turns guidance off), not \(guidance)")
            }
            guard (0...1000).contains(deepcache) else { throw ValidationError("--deepcache must be 0 (off) … 1000") }
        }

        func run() throws {
            var options = LipsyncGenerator.Options(video: video, audio: audio, output: out, unet: unet, vae: vae, whisper: whisper, mask: mask)
            options.steps = steps; options.guidance = guidance; options.seed = seed; options.resolution = resolution
            options.device = device; options.deepCache = deepcache > 0 ? deepcache : nil
            do {
                // The inputs and the output are checked before the models load (which takes a while).
                try LipsyncGenerator(options).checkInputsAndOutput()
                let summary = try LipsyncGenerator(options).run()
                Console.error("infer: \(summary.frames) frames (\(summary.windows) windows) from \(summary.videoFrames) video frames, "
                    + "\(summary.facelessFrames) without a face passed through → \(out)\n")
            } catch { throw fail(error) }
        }
    }
}
