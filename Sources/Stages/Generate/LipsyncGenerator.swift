import Foundation
import Inference
import PipelineCore

/// `pipelined infer`: LatentSync's lip-sync generation on the shared model code. The video is read at
/// 25 fps and every frame aligned with stage 5's code (same detector, template and smoothing); the
/// audio drives the length (the video loops forward–backward when the audio is longer); 16-frame
/// windows are generated, decoded and pasted back through the inverse alignment; the result is muxed
/// with the audio. Frames without an acceptable face are passed through unchanged (upstream aborts).
/// Memory does not grow with the video: originals and aligned faces go to temporary files on disk
/// and windows stream to the encoder.
public struct LipsyncGenerator {
    public struct Options: Sendable {
        public var video: String, audio: String, output: String
        public var unet: String, vae: String, whisper: String, mask: String
        public var steps = 20, guidance = 1.5, seed: UInt64 = 1247, resolution = 256
        public var device = "auto"
        /// DeepCache interval (LatentSync's scripts use 3); nil runs the whole U-Net at every step.
        public var deepCache: Int?
        public var align = PipelineConfiguration().align
        public var crf = 18

        public init(video: String, audio: String, output: String, unet: String, vae: String, whisper: String, mask: String) {
            self.video = video; self.audio = audio; self.output = output; self.unet = unet; self.vae = vae; self.whisper = whisper; self.mask = mask
        }
    }

    public struct Summary: Sendable, Equatable {
        public var frames: Int, facelessFrames: Int, windows: Int, videoFrames: Int
    }

    public enum GeneratorError: Error, CustomStringConvertible {
        case missingFiles([(option: String, wanted: String, path: String)])
        case tooShort(String)
        case output(String)

        public var description: String {
            switch self {
            case let .missingFiles(files):
                "infer needs these files (nothing is downloaded):\n" + files.map { "  \($0.option) \($0.path.isEmpty ? "(not given)" : $0.path): \($0.wanted)" }.joined(separator: "\n")
            case let .tooShort(what), let .output(what): what
            }
        }
    }

    public let options: Options
    public init(_ options: Options) { self.options = options }

    /// The model files a run needs and which of them are missing.
    public func checkFiles() throws {
        let wanted = [("--unet", "LatentSync's latentsync_unet.pt (its state_dict), or a safetensors U-Net", options.unet),
                      ("--vae", "the diffusers sd-vae-ft-mse folder (config.json + diffusion_pytorch_model.safetensors) or its safetensors file", options.vae),
                      ("--whisper", "OpenAI Whisper's tiny.pt (LatentSync's checkpoints/whisper/tiny.pt)", options.whisper),
                      ("--mask", "LatentSync's latentsync/utils/mask.png (white = keep, black = generate)", options.mask)]
        let missing = wanted.filter { $0.2.isEmpty || !FileManager.default.fileExists(atPath: $0.2) }
        if !missing.isEmpty { throw GeneratorError.missingFiles(missing.map { (option: $0.0, wanted: $0.1, path: $0.2) }) }
    }

    /// What can be checked before any model loads: the guidance is a number, the video and the audio
    /// are readable files, the output's folder exists and the output is neither input (nor another
    /// file that must not be replaced).
    public func checkInputsAndOutput() throws {
        guard options.guidance.isFinite, options.guidance >= 1 else {
            throw GeneratorError.output("--guidance \(options.guidance) is not a guidance scale: use a finite number ≥ 1 (LatentSync's scripts use 1.5; 1 turns guidance off)")
        }
        for (option, path) in [("--video", options.video), ("--audio", options.audio)] {
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
                throw GeneratorError.output("\(option) \(path): no such file")
            }
            guard !isDirectory.boolValue, FileManager.default.isReadableFile(atPath: path) else {
                throw GeneratorError.output("\(option) \(path): \(isDirectory.boolValue ? "a folder, not a media file" : "not readable (check its permissions)")")
            }
        }
        try UserOutputFile.check(options.output, protecting: protectedPaths)
    }

    /// What `--out` must never replace.
    var protectedPaths: [UserOutputFile.Protected] {
        [UserOutputFile.Protected(options.video, "the input video (--video)"), UserOutputFile.Protected(options.audio, "the input audio (--audio)")]
            + [options.unet, options.vae, options.whisper, options.mask].filter { !$0.isEmpty }.map { UserOutputFile.Protected($0, "a model file") }
    }

    public func run() throws -> Summary {
        try checkInputsAndOutput()
        try checkFiles()
        let backend = try TorchBackend.shared()
        let device = try backend.device(options.device)
        // Half precision on CUDA, as LatentSync runs its models there; float32 on the CPU.
        let dtype: DType = device == .cpu ? .float32 : .float16
        let r = options.resolution
        let models = try GeneratorModels(options, device: device, dtype: dtype)
        let mask = try Self.mask(options.mask, size: r)

        // Audio → Whisper chunks, one per output frame.
        let samples = try AudioFile.samples(options.audio)
        guard samples.count >= 640 else { throw GeneratorError.tooShort("\(options.audio) has \(samples.count) samples of audio; at least one 25 fps frame (640) is needed") }
        let (features, featureFrames) = try backend.inferenceMode {
            try models.whisper.features(logMel: WhisperLogMel().spectrogram(samples), device: device)
        }
        // The audio's length in frames (to the nearest frame: decoders add a few samples of codec padding).
        let frameCount = min(WhisperAudioEncoder.chunkCount(frames: featureFrames), max(1, (samples.count + 320) / 640))
        let width = models.whisper.dimensions.width

        // Video → originals and aligned faces on disk.
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("pipelined-infer-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: scratch) }
        let aligned = try AlignedVideo.read(options.video, frames: frameCount, resolution: r, align: options.align, scratch: scratch)
        guard aligned.count > 0 else { throw GeneratorError.tooShort("\(options.video) has no video frames") }

        // Output frame i shows source frame loop(i): forward, backward, forward, … (the list and its reverse, repeated).
        func source(_ i: Int) -> Int {
            let c = aligned.count, k = i % (2 * c)
            return k < c ? k : 2 * c - 1 - k
        }
        var settings = ClipWriter.Settings(width: aligned.width, height: aligned.height)
        settings.crf = options.crf
        settings.threads = 0
        let restore = FaceRestore(template: AlignmentTemplate(resolution: r))
        let window = LipsyncWindow(unet: models.unet, vae: models.vae, scheduler: DDIMScheduler(steps: options.steps), guidance: options.guidance,
                                   device: device, deepCache: options.deepCache)
        var random = SeededGenerator(seed: options.seed)
        let noise = random.gaussians(4 * (r / 8) * (r / 8))
        let grey = [UInt8](repeating: 127, count: r * r * 3)
        var faceless = 0, windows = 0
        // Written through a temporary and renamed (readers see the old file or the whole new one),
        // or into a device or FIFO as it is (`--out /dev/null`); never over an input.
        try UserOutputFile.write(to: options.output, protecting: protectedPaths, temporarySuffix: ".mp4") { temporary in
            let writer = try ClipWriter(path: temporary, settings: settings)
            for start in stride(from: 0, to: frameCount, by: 16) {
                let indices = Array(start..<min(frameCount, start + 16)).map(source)
                let faces = try indices.map { try aligned.hasFace[$0] ? aligned.face($0) : grey }
                var chunks: [Float] = []
                for i in start..<(start + indices.count) { chunks += WhisperAudioEncoder.chunk(features, frames: featureFrames, width: width, videoFrame: i) }
                let generated = try backend.inferenceMode {
                    try LipsyncWindow.frames(window.generate(frames: faces, mask: mask, audio: Tensor(chunks, shape: [indices.count, 50, width], device: device),
                                                             noise: noise))
                }
                windows += 1
                for (k, j) in indices.enumerated() {
                    var frame = try aligned.original(j)
                    if aligned.hasFace[j] {
                        frame = try restore.paste(RGBImage(width: r, height: r, pixels: generated[k]), into: frame, matrix: aligned.matrices[j])
                    } else {
                        faceless += 1
                    }
                    try writer.writeVideo(Frame(rgb: frame))
                }
            }
            try writer.writeAudio(Array(samples.prefix(frameCount * 640)))
            try writer.finish()
        }
        return Summary(frames: frameCount, facelessFrames: faceless, windows: windows, videoFrames: aligned.count)
    }

    /// The mask image resized to R×R with Lanczos-4 (as upstream), channel 0.
    static func mask(_ path: String, size: Int) throws -> LipsyncWindow.Mask {
        guard let image = try ClipFrames.read(path, indices: [0])[0] else { throw GeneratorError.tooShort("\(path) has no image") }
        let resized = image.width == size && image.height == size ? image : try image.resized(width: size, height: size, interpolation: .lanczos4)
        return LipsyncWindow.Mask(u8: stride(from: 0, to: resized.pixels.count, by: 3).map { resized.pixels[$0] }, size: size)
    }
}

/// The generator's three models, from the files a user points at.
struct GeneratorModels {
    let unet: UNet3DConditionModel, vae: AutoencoderKL, whisper: WhisperAudioEncoder

    init(_ o: LipsyncGenerator.Options, device: Device, dtype: DType) throws {
        let unetArchive = try ModelStore.openWeights(o.unet)
        var unetConfig = UNet3DConditionModel.Config.stage2
        if let json = (unetArchive as? SafeTensors)?.metadata["unet_config"], let widths = Self.widths(json) { unetConfig = .init(blockOutChannels: widths) }
        unet = try UNet3DConditionModel.load(unetArchive, config: unetConfig, device: device, dtype: dtype).0

        var vaePath = o.vae, vaeConfig = AutoencoderKL.Config.sdVAEftMSE
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: o.vae, isDirectory: &isDirectory), isDirectory.boolValue {
            let folder = URL(fileURLWithPath: o.vae)
            if let json = try? String(contentsOf: folder.appendingPathComponent("config.json"), encoding: .utf8), let widths = Self.widths(json) {
                vaeConfig = .init(blockOutChannels: widths)
            }
            vaePath = folder.appendingPathComponent("diffusion_pytorch_model.safetensors").path
        }
        let vaeArchive = try ModelStore.openWeights(vaePath)
        if let json = (vaeArchive as? SafeTensors)?.metadata["vae_config"], let widths = Self.widths(json) { vaeConfig = .init(blockOutChannels: widths) }
        vae = try AutoencoderKL.load(vaeArchive, config: vaeConfig, device: device, dtype: dtype).0

        // tiny.pt: {"dims": {...}, "model_state_dict": {...}}; the encoder's dimensions come from `dims`.
        let checkpoint = try TorchCheckpoint(contentsOf: URL(fileURLWithPath: o.whisper))
        var dims = WhisperAudioEncoder.Dimensions.tiny
        func dim(_ key: String) -> Int? { checkpoint.scalars["dims.\(key)"]?.intValue }
        if let mels = dim("n_mels"), let context = dim("n_audio_ctx"), let state = dim("n_audio_state"), let heads = dim("n_audio_head"), let layers = dim("n_audio_layer") {
            dims = .init(melBands: mels, contextFrames: context, width: state, heads: heads, layers: layers)
        }
        whisper = try WhisperAudioEncoder.load(checkpoint.stateDictArchive(under: ["model_state_dict.", ""]), dimensions: dims, device: device, dtype: dtype).0
    }

    /// `block_out_channels` of a diffusers-style JSON configuration.
    static func widths(_ json: String) -> [Int]? {
        (try? JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])?["block_out_channels"] as? [Int]
    }
}

/// A video at 25 fps with every frame aligned (stage 5's tracker, template and smoothing), kept in
/// temporary files: originals and R×R faces, read back by frame index.
struct AlignedVideo {
    let count: Int, width: Int, height: Int, resolution: Int
    let hasFace: [Bool], matrices: [AffineMatrix]
    let originals: FileHandle, faces: FileHandle

    static func read(_ path: String, frames wanted: Int, resolution r: Int, align: PipelineConfiguration.Align, scratch: URL) throws -> AlignedVideo {
        guard let map = try ScanPass().run(path: path).frameMap else { throw MediaError.noStream(kind: "video", path: path) }
        let reader = NormalizedReader(path: path, frameMap: map)
        let rotation = try reader.rotationDegrees()
        let tracker = FaceTracker(detector: try DlibFaceLandmarkDetector(modelPath: align.landmarkModel), settings: align.tracker)
        let template = AlignmentTemplate(resolution: r)
        let converter = PackedPictureConverter(order: .rgb)
        let originalsURL = scratch.appendingPathComponent("originals.rgb"), facesURL = scratch.appendingPathComponent("faces.rgb")
        FileManager.default.createFile(atPath: originalsURL.path, contents: nil)
        FileManager.default.createFile(atPath: facesURL.path, contents: nil)
        let originals = try FileHandle(forUpdating: originalsURL), faces = try FileHandle(forUpdating: facesURL)
        var hasFace: [Bool] = [], matrices: [AffineMatrix] = []
        var aligner: FaceAligner?
        var size = (0, 0)
        let blank = Data(count: r * r * 3)
        // The audio decides the length: frames past it are not needed unless the video loops.
        try reader.read(frames: 0..<min(reader.frameCount, wanted), video: { _, frame in
            let image = try converter.image(of: frame).rotated(clockwise: rotation)
            size = (image.width, image.height)
            originals.write(Data(image.pixels))
            guard let landmarks = try tracker.landmarks(in: image) else {
                aligner = nil  // smoothing restarts after a gap, as stage 5 starts a new piece
                hasFace.append(false); matrices.append(AffineMatrix(1, 0, 0, 0, 1, 0)); faces.write(blank)
                return
            }
            if aligner == nil { aligner = FaceAligner(resolution: r, smoothing: align.smoothing) }
            let smoothed = aligner!.smooth(landmarks)
            let matrix = aligner!.matrix(for: smoothed)
            let face = try image.warpedLanczos(matrix, width: template.cropWidth, height: template.cropHeight)
                .resized(width: r, height: r, interpolation: .lanczos4)
            faces.write(Data(face.pixels))
            hasFace.append(true); matrices.append(matrix)
        }, audio: nil)
        return AlignedVideo(count: hasFace.count, width: size.0, height: size.1, resolution: r, hasFace: hasFace, matrices: matrices,
                            originals: originals, faces: faces)
    }

    func original(_ i: Int) throws -> RGBImage {
        let bytes = width * height * 3
        try originals.seek(toOffset: UInt64(i * bytes))
        return RGBImage(width: width, height: height, pixels: [UInt8](try originals.read(upToCount: bytes) ?? Data()))
    }

    func face(_ i: Int) throws -> [UInt8] {
        let bytes = resolution * resolution * 3
        try faces.seek(toOffset: UInt64(i * bytes))
        return [UInt8](try faces.read(upToCount: bytes) ?? Data())
    }
}
