// Model parity and GPU throughput on any machine with a torch backend, without FFmpeg/OpenCV/dlib
// (so it can be carried to the GPU machine as a static binary):
//
//   InferenceCheck parity GOLDEN_DIR [--device D] [--models syncnet_v2,stable_syncnet,hyperiqa]
//       Each model on its golden set on the device; prints the deviations; exits 1 if any exceeds
//       the golden README's tolerance. TF32 is off so CUDA runs in true float32.
//   InferenceCheck bench-generator [--device D] [--dtype float32|float16] [--resolution 256|512] [--deepcache 3]
//                                  [--frames 250] [--channels-last 0|1] [--profile TRACE.json]
//       The full-size U-Net (1.27 B parameters), VAE and Whisper-tiny at random weights: one 16-frame
//       window, 20 steps, guidance 1.5; frames/s, the U-Net/VAE/Whisper shares and peak memory. With
//       --frames, also a whole clip of that many aligned faces through `LipsyncWindow` (what `infer`
//       runs per window: host frames in, pasted u8 frames back), the measure reference_generator.py
//       takes of LatentSync's own pipeline. --channels-last picks the U-Net's activation layout
//       (default: the device's). --profile writes a Chrome trace of one full U-Net forward (kernel_summary.py
//       sums it by kernel kind).
//   InferenceCheck bench [--device D] [--dtype float32|float16|bfloat16] [--iterations N]
//       SyncNet v2 scoring of 10 s clips (245 five-frame windows per clip, one clip per batch) and
//       hyperIQA scoring (64 clips × 3 frames per batch) at random weights; prints one JSON line per
//       model: clips/s, seconds per batch, peak CUDA memory. Benchmarks/ModelBenchmark/run.sh runs the
//       same in PyTorch eagerly and prints the ratios.
//   InferenceCheck bench-train [--device D | --devices cuda:0,cuda:1] [--dtype float32|float16|bfloat16] [--batch 256 per device] [--accumulation 1] [--steps 10]
//       Training steps of the reference StableSyncNet (syncnet_16_pixel_attn, 401 M parameters) with
//       LatentSync's recipe (BCE on the cosine, AdamW, clipping 1.0, autocast + loss scaling) on a
//       random batch; one JSON line: step time, samples/s, peak memory.
//       train_baseline.py is the same step in PyTorch.
// FoundationEssentials rather than Foundation: no ICU, so the static binary stays small to carry.
import FoundationEssentials
import Glibc
import Inference

let arguments = Array(CommandLine.arguments.dropFirst())
func printError(_ text: String) { _ = text.withCString { write(2, $0, strlen($0)) } }
func option(_ name: String, _ fallback: String) -> String {
    guard let i = arguments.firstIndex(of: name), i + 1 < arguments.count else { return fallback }
    return arguments[i + 1]
}
guard let mode = arguments.first, ["parity", "bench", "bench-generator", "bench-train"].contains(mode), mode != "parity" || arguments.count >= 2 else {
    printError("usage: InferenceCheck parity GOLDEN_DIR [--device D] [--models a,b] | bench [--device D] [--dtype T] [--iterations N]\n")
    exit(64)
}
var failures = 0

@MainActor func report(_ name: String, _ ours: [Float], _ reference: [Float], tolerance: Float? = nil) {
    let scale = max(1, reference.map(abs).max() ?? 1)
    let bound = tolerance ?? 1e-3 * scale
    let worst = zip(ours, reference).map { abs($0 - $1) }.max() ?? .infinity
    let ok = ours.count == reference.count && worst <= bound
    if !ok { failures += 1 }
    print("\(ok ? "ok  " : "FAIL") \(name): max |Δ| \(worst) (tolerance \(bound))")
}

@MainActor func parity(_ golden: URL, device: Device, models: Set<String>) throws {
    if models.contains("syncnet_v2") {
        let dir = golden.appendingPathComponent("syncnet_v2")
        let (model, loaded) = try SyncNetV2.load(SafeTensors(contentsOf: dir.appendingPathComponent("weights.safetensors")), device: device)
        print("SyncNet v2: \(loaded.tensors) tensors, \(loaded.parameters) parameters")
        let io = try SafeTensors(contentsOf: dir.appendingPathComponent("io.safetensors"))
        let audio = try Tensor(io.float32("aud_input"), shape: [2, 1, 13, 20], device: device)
        report("syncnet_v2 forward_aud", try model.forwardAudio(audio).floats(), try io.float32("forward_aud"))
        let lip = try Tensor(io.uint8("lip_input_u8").map(Float.init), shape: [2, 3, 5, 224, 224], device: device)
        report("syncnet_v2 forward_lip", try model.forwardLip(lip).floats(), try io.float32("forward_lip"))
        let data = try SafeTensors(contentsOf: dir.appendingPathComponent("eval.safetensors"))
        let r = try model.evaluate(frames: data.uint8("eval_frames_u8").map(Float.init), frameCount: 40, mfcc: data.float32("eval_mfcc"),
                                   mfccColumns: 160, device: device)
        report("syncnet_v2 dists", r.distances.flatMap { $0 }, try data.float32("dists"))
        report("syncnet_v2 mean_dists", r.meanDistances, try data.float32("mean_dists"))
        let ok = r.offset == 3 && abs(r.minDistance - 5.227066) <= 5.3e-3 && abs(r.confidence - 7.697222) <= 7.7e-3
        if !ok { failures += 1 }
        print("\(ok ? "ok  " : "FAIL") syncnet_v2 evaluation: offset \(r.offset) (3), min distance \(r.minDistance) (5.227066), confidence \(r.confidence) (7.697222)")
    }
    if models.contains("stable_syncnet") {
        let dir = golden.appendingPathComponent("stable_syncnet")
        var config = StableSyncNet.Config.syncnet16PixelAttention
        config.audio.blockOutChannels = [32, 64, 96, 128, 128, 160, 192]
        config.visual.blockOutChannels = [32, 64, 96, 96, 128, 160, 192, 192]
        let (model, loaded) = try StableSyncNet.load(SafeTensors(contentsOf: dir.appendingPathComponent("weights.safetensors")), config: config, device: device)
        print("StableSyncNet (reduced): \(loaded.tensors) tensors, \(loaded.parameters) parameters; shipped config \(try StableSyncNet.parameters(of: .syncnet16PixelAttention).parameters)")
        let io = try SafeTensors(contentsOf: dir.appendingPathComponent("io.safetensors"))
        let mel = try Tensor(io.float32("audio_input"), shape: [2, 1, 80, 52], device: device)
        let frames = try Tensor(io.uint8("visual_input_u8").map { (Float($0) / 255 - 0.5) / 0.5 }, shape: [2, 48, 128, 256], device: device)
        let v = try model.visualEmbedding(frames), a = try model.audioEmbedding(mel)
        report("stable_syncnet visual_embeds", try v.floats(), try io.float32("visual_embeds"), tolerance: 1e-4)
        report("stable_syncnet audio_embeds", try a.floats(), try io.float32("audio_embeds"), tolerance: 1e-4)
        report("stable_syncnet cos_sim", try StableSyncNet.cosine(v, a).floats(), try io.float32("cos_sim"), tolerance: 1e-4)
        for (i, act) in try model.audioEncoder.activations(mel).enumerated() {
            report("stable_syncnet audio down_blocks.\(i)", try act.floats(), try io.float32("act.audio_encoder.down_blocks.\(i)"))
        }
    }
    if models.contains("hyperiqa") {
        let dir = golden.appendingPathComponent("hyperiqa")
        let (model, loaded) = try HyperIQA.load(SafeTensors(contentsOf: dir.appendingPathComponent("weights.safetensors")), device: device)
        print("hyperIQA: \(loaded.tensors) tensors, \(loaded.parameters) parameters")
        let io = try SafeTensors(contentsOf: dir.appendingPathComponent("io.safetensors"))
        let out = try model.forward(Tensor(io.float32("input"), shape: [3, 3, 224, 224], device: device))
        report("hyperiqa scores", try out.scores.floats(), try io.float32("scores"), tolerance: 1e-2)
        report("hyperiqa target_in_vec", try out.targetInput.floats(), try io.float32("target_in_vec"))
        report("hyperiqa hyper_in_feat", try out.hyperFeature.floats(), try io.float32("hyper_in_feat"))
        for k in 1...4 { report("hyperiqa target_q\(k)", try out.hidden[k - 1].floats(), try io.float32("target_q\(k)")) }
    }
}

@MainActor func generatorParity(_ golden: URL, device: Device, models: Set<String>) throws {
    let unetConfig = UNet3DConditionModel.Config(blockOutChannels: [32, 64, 64, 64]), vaeConfig = AutoencoderKL.Config(blockOutChannels: [32, 32, 64, 64])
    if models.contains("whisper") {
        let dir = golden.appendingPathComponent("whisper_tiny_encoder")
        let encoder = try WhisperAudioEncoder.load(SafeTensors(contentsOf: dir.appendingPathComponent("weights.safetensors")), device: device).0
        let io = try SafeTensors(contentsOf: dir.appendingPathComponent("io.safetensors"))
        let stored = try io.float32("log_mel")
        let (features, _) = try encoder.features(logMel: (0..<80).map { Array(stored[($0 * 299)..<(($0 + 1) * 299)]) }, device: device)
        report("whisper hidden_states", features, try io.float32("hidden_states"), tolerance: 2e-4)
    }
    if models.contains("ddim") {
        let io = try SafeTensors(contentsOf: golden.appendingPathComponent("ddim/ddim.safetensors"))
        let shape = [1, 4, 2, 8, 8]
        let step = try DDIMScheduler(steps: 20).step(Tensor(io.float32("model_output"), shape: shape, device: device), at: 951,
                                                     sample: Tensor(io.float32("sample"), shape: shape, device: device))
        report("ddim step t=951", try step.previous.floats(), try io.float32("step20_t951_prev_sample"), tolerance: 1e-5)
    }
    if models.contains("vae") {
        let dir = golden.appendingPathComponent("vae_small")
        let vae = try AutoencoderKL.load(SafeTensors(contentsOf: dir.appendingPathComponent("weights.safetensors")), config: vaeConfig, device: device).0
        let io = try SafeTensors(contentsOf: dir.appendingPathComponent("io.safetensors"))
        report("vae latent_mean", try vae.encode(Tensor(io.float32("image"), shape: [2, 3, 64, 64], device: device)).mean.floats(), try io.float32("latent_mean"), tolerance: 2e-3)
        report("vae decoded", try vae.decode(Tensor(io.float32("decoder_latent_scaled"), shape: [2, 4, 8, 8], device: device)).floats(), try io.float32("decoded"), tolerance: 1e-4)
    }
    if models.contains("unet") {
        let dir = golden.appendingPathComponent("unet3d_small")
        let unet = try UNet3DConditionModel.load(SafeTensors(contentsOf: dir.appendingPathComponent("weights.safetensors")), config: unetConfig, device: device).0
        let io = try SafeTensors(contentsOf: dir.appendingPathComponent("io.safetensors"))
        let out = try unet(Tensor(io.float32("sample"), shape: [2, 13, 16, 16, 16], device: device), timestep: 501,
                           context: Tensor(io.float32("encoder_hidden_states"), shape: [32, 50, 384], device: device))
        report("unet output", try out.floats(), try io.float32("output"), tolerance: 1e-4)
    }
    if models.contains("groupnorm") {
        // group_norm_frames on channels-last input (the backend's own CUDA kernel where it has one) against
        // PyTorch's GroupNorm of the contiguous (B, C, F, H, W) tensor in float32; offsets make |mean| ≫ std
        // in some channels, where a careless variance would cancel.
        for dtype in [DType.float32, .float16, .bfloat16] {
            for (items, frames, c, side) in [(2, 16, 320, 32), (2, 16, 2560, 8), (32, 1, 640, 16), (2, 10, 1920, 4)] {
                var g = SeededGenerator(seed: UInt64(c + side))
                let count = items * frames * c * side * side
                let values = (0..<count).map { i in g.symmetricUnit() * 2 + Float((i % c) % 7) * 30 }
                let x = try Tensor(values, shape: [items * frames, c, side, side], device: device)
                let weight = try Tensor((0..<c).map { _ in 1 + g.symmetricUnit() / 2 }, shape: [c], device: device)
                let bias = try Tensor((0..<c).map { _ in g.symmetricUnit() }, shape: [c], device: device)
                let five = try x.reshaped([items, frames, c, side, side]).permuted([0, 2, 1, 3, 4]).contiguous(channelsLast: false)
                let expected = try Functional.groupNorm(five, groups: 32, weight: weight, bias: bias, eps: 1e-5).activation(.silu)
                    .permuted([0, 2, 1, 3, 4]).reshaped([items * frames, c, side, side]).floats()
                let input = try x.to(device, dtype).contiguous(channelsLast: true)
                let ours = try Functional.groupNorm(frames: input, frames: frames, groups: 32, weight: weight.to(device, dtype), bias: bias.to(device, dtype),
                                                    eps: 1e-5, silu: true).floats()
                let bound: Float = dtype == .float32 ? 1e-4 : dtype == .float16 ? 1e-2 : 6e-2
                report("group_norm_frames \(dtype) \(items)x\(frames)x\(c)x\(side)²", ours, expected, tolerance: bound)
            }
        }
    }
    if models.contains("geglu") {
        // geglu_linear (on CUDA: one product and the backend's fused kernel) against the definition from
        // separate operations in float32: the projection, its halves, exact GELU, the product.
        for dtype in [DType.float32, .float16, .bfloat16] {
            for (rows, c, inner) in [(4096, 320, 1280), (777, 640, 2560), (50, 1280, 5120)] {
                var g = SeededGenerator(seed: UInt64(rows + c))
                let x = try Tensor((0..<(rows * c)).map { _ in g.symmetricUnit() * 2 }, shape: [rows, c], device: device)
                let weight = try Tensor((0..<(2 * inner * c)).map { _ in g.symmetricUnit() / Float(c).squareRoot() }, shape: [2 * inner, c], device: device)
                let bias = try Tensor((0..<(2 * inner)).map { _ in g.symmetricUnit() }, shape: [2 * inner], device: device)
                let y = try Functional.linear(x, weight: weight, bias: bias)
                let expected = try (y.narrowed(1, 0..<inner) * y.narrowed(1, inner..<(2 * inner)).activation(.gelu)).floats()
                let ours = try Functional.gegluLinear(x.to(device, dtype), weight: weight.to(device, dtype), bias: bias.to(device, dtype)).floats()
                // Relative to the largest value: the product of two rounded halves, each rounded after a K-long sum.
                let bound = (dtype == .float32 ? 1e-5 : dtype == .float16 ? 3e-3 : 2e-2) * max(1, expected.map(abs).max() ?? 1)
                report("geglu_linear \(dtype) \(rows)x\(c)→\(inner)", ours, expected, tolerance: bound)
            }
        }
    }
    if models.contains("layernorm") {
        // LayerNorm over the last dimension (the backend's own CUDA kernel where it applies), alone and with
        // a per-frame table added, against PyTorch's LayerNorm (+ the table) in float32 on the CPU.
        for dtype in [DType.float32, .float16, .bfloat16] {
            for (b, f, l, c) in [(2, 16, 1024, 320), (2, 16, 64, 1280), (1, 5, 33, 640), (3, 2, 7, 2048)] {
                var g = SeededGenerator(seed: UInt64(c + l))
                let values = (0..<(b * f * l * c)).map { i in g.symmetricUnit() * 2 + Float((i % c) % 5) * 10 }
                let gamma = (0..<c).map { _ in 1 + g.symmetricUnit() / 2 }, beta = (0..<c).map { _ in g.symmetricUnit() }
                let table = (0..<(f * c)).map { _ in g.symmetricUnit() }
                let x = try Tensor(values, shape: [b, f, l, c]), w = try Tensor(gamma, shape: [c]), bias = try Tensor(beta, shape: [c])
                let t = try Tensor(table, shape: [f, c])
                let plain = try Functional.layerNorm(x, weight: w, bias: bias, eps: 1e-5).floats()
                let added = try Functional.layerNorm(x, weight: w, bias: bias, eps: 1e-5, addingPerFrame: t).floats()
                func on(_ tensor: Tensor) throws -> Tensor { try tensor.to(device, dtype) }
                let bound: Float = dtype == .float32 ? 1e-4 : dtype == .float16 ? 1.5e-2 : 8e-2
                report("layer_norm \(dtype) \(b)x\(f)x\(l)x\(c)", try Functional.layerNorm(on(x), weight: on(w), bias: on(bias), eps: 1e-5).floats(), plain,
                       tolerance: bound)
                report("layer_norm + frames \(dtype) \(b)x\(f)x\(l)x\(c)",
                       try Functional.layerNorm(on(x), weight: on(w), bias: on(bias), eps: 1e-5, addingPerFrame: on(t)).floats(), added, tolerance: bound)
            }
        }
    }
    if models.contains("graphs") {
        // LipsyncWindow with the U-Net's forwards replayed as CUDA graphs against the same windows run op
        // by op: four windows (the last one shorter) without and with DeepCache, so captures, replays,
        // the short path reading the full path's state, and a shape seen once are all exercised.
        let unet = try UNet3DConditionModel.load(SafeTensors(contentsOf: golden.appendingPathComponent("unet3d_small/weights.safetensors")), config: unetConfig, device: device).0
        let vae = try AutoencoderKL.load(SafeTensors(contentsOf: golden.appendingPathComponent("vae_small/weights.safetensors")), config: vaeConfig, device: device).0
        var g = SeededGenerator(seed: 99)
        let lengths = [16, 16, 16, 9]
        let faces = lengths.map { n in (0..<n).map { _ in (0..<(128 * 128 * 3)).map { _ in UInt8(truncatingIfNeeded: g.next() >> 56) } } }
        let audio = try lengths.map { n in try Tensor((0..<(n * 50 * 384)).map { _ in g.symmetricUnit() }, shape: [n, 50, 384], device: device) }
        let noise = (0..<(4 * 16 * 16)).map { _ in g.symmetricUnit() }
        let mask = LipsyncWindow.Mask(u8: (0..<(128 * 128)).map { $0 / 128 >= 80 ? 0 : 255 }, size: 128)
        for deepCache in [nil, 3] as [Int?] {
            func run(_ graphs: Bool) throws -> ([Float], LipsyncWindow) {
                let window = LipsyncWindow(unet: unet, vae: vae, scheduler: DDIMScheduler(steps: 8), device: device, deepCache: deepCache, cudaGraphs: graphs)
                return (try zip(faces, audio).flatMap { try window.generate(frames: $0, mask: mask, audio: $1, noise: noise).floats() }, window)
            }
            let (expected, _) = try run(false)
            let (ours, window) = try run(true)
            let stats = window.graphs.map { "\($0.replays) replays, \($0.eager) op by op, \($0.failures.count) failed captures" } ?? "no graphs"
            for failure in window.graphs?.failures ?? [] { print("     \(failure)") }
            let replayed = (window.graphs?.replays ?? 0) > 0 && window.graphs?.failures.isEmpty == true
            if !replayed && device != .cpu { failures += 1; print("FAIL graphs did not replay (\(stats))") }
            report("lipsync windows with CUDA graphs, DeepCache \(deepCache.map(String.init) ?? "off") (\(stats))", ours, expected, tolerance: 1e-5)
        }
    }
    if models.contains("lipsync") {
        let unet = try UNet3DConditionModel.load(SafeTensors(contentsOf: golden.appendingPathComponent("unet3d_small/weights.safetensors")), config: unetConfig, device: device).0
        let vae = try AutoencoderKL.load(SafeTensors(contentsOf: golden.appendingPathComponent("vae_small/weights.safetensors")), config: vaeConfig, device: device).0
        let io = try SafeTensors(contentsOf: golden.appendingPathComponent("lipsync_small/io.safetensors"))
        let pixels = try io.uint8("frames_u8"), size = 128 * 128 * 3
        var trace = LipsyncWindow.Trace()
        let out = try LipsyncWindow(unet: unet, vae: vae, scheduler: DDIMScheduler(steps: 5), device: device)
            .generate(frames: (0..<16).map { Array(pixels[($0 * size)..<(($0 + 1) * size)]) }, mask: .init(u8: io.uint8("mask_u8"), size: 128),
                      audio: Tensor(io.float32("audio_embeds"), shape: [16, 50, 384], device: device), noise: io.float32("init_noise"), trace: &trace)
        report("lipsync latents", try trace.latents.flatMap { try $0.floats() }, try io.float32("latents"), tolerance: 5e-4)
        report("lipsync output", try out.floats(), try io.float32("output"), tolerance: 2e-4)
    }
}

/// The full-size generator at random weights: one 16-frame window at `resolution`, 20 DDIM steps,
/// guidance 1.5 (U-Net batch 2), with the time split into Whisper, VAE encode, U-Net and VAE decode.
func benchGenerator(device: Device, dtype: DType, resolution: Int, iterations: Int, deepCache: Int?, clipFrames: Int?, channelsLast: Bool?,
                    profile: String?) throws {
    let backend = try TorchBackend.shared()
    if ProcessInfo.processInfo.environment["PIPELINED_CUDNN_BENCHMARK"] == "1" { try backend.cudnnBenchmark(true) }
    let clock = ContinuousClock()
    func seconds(_ body: () throws -> Void) throws -> Double {
        try backend.synchronize(device)
        let start = clock.now
        try body()
        try backend.synchronize(device)
        let d = clock.now - start
        return Double(d.components.seconds) + Double(d.components.attoseconds) * 1e-18
    }
    let unet = try UNet3DConditionModel(WeightSource(.random(RandomWeights(seed: 3)), device: device, dtype: dtype), channelsLast: channelsLast)
    let vae = try AutoencoderKL(WeightSource(.random(RandomWeights(seed: 4)), device: device, dtype: dtype))
    let whisper = try WhisperAudioEncoder(WeightSource(.random(RandomWeights(seed: 5)), device: device, dtype: dtype))
    let parameters = try UNet3DConditionModel.parametersCount()
    let frames = 16, h = resolution / 8
    let images = try Tensor((0..<(2 * frames * 3 * resolution * resolution)).map { _ in Float.random(in: -1...1) }, shape: [2 * frames, 3, resolution, resolution], device: device)
    let mel = try Tensor((0..<(80 * 3000)).map { _ in Float.random(in: -1...1) }, shape: [1, 80, 3000], device: device)
    let noise = try Tensor((0..<(4 * frames * h * h)).map { _ in Float.random(in: -1...1) }, shape: [1, 4, frames, h, h], device: device)
    let context = try Tensor((0..<(2 * frames * 50 * 384)).map { _ in Float.random(in: -1...1) }, shape: [2 * frames, 50, 384], device: device)
    let scheduler = DDIMScheduler(steps: 20)
    // PIPELINED_CUDA_GRAPHS=0: every forward dispatched op by op (for comparisons); by default CUDA graphs, as `infer` runs.
    let cudaGraphs = ProcessInfo.processInfo.environment["PIPELINED_CUDA_GRAPHS"] != "0"
    let graphs = cudaGraphs && device != .cpu ? UNet3DConditionModel.Graphs(unet) : nil
    var times = (whisper: 0.0, encode: 0.0, unet: 0.0, decode: 0.0)
    try backend.resetPeakMemory(device)
    for iteration in 0..<(iterations + 1) {
        try backend.inferenceMode {
            var latents: Tensor?, current = noise
            let w = try seconds { _ = try whisper.hiddenStates(mel).states.last!.floats().count }
            let e = try seconds { latents = try vae.latents(images) }
            let cache = deepCache.map { UNet3DConditionModel.DeepCache(interval: $0) }
            let u = try seconds {
                let l = try latents!.permuted([1, 0, 2, 3]).reshaped([1, 4, 2 * frames, h, h])
                let conditions = try Tensor.cat([noise.narrowed(1, 0..<1), l.narrowed(2, 0..<frames), l.narrowed(2, frames..<(2 * frames))], dim: 1)
                let twice = try Tensor.cat([conditions, conditions], dim: 0)
                for (index, t) in scheduler.timesteps.enumerated() {
                    let input = try Tensor.cat([Tensor.cat([current, current], dim: 0), twice], dim: 1)
                    let prediction = try graphs.map { try $0(input, timestep: t, context: context, cache: cache, step: index) }
                        ?? unet(input, timestep: t, context: context, cache: cache, step: index)
                    let guided = try DDIMScheduler.guided(unconditional: prediction.narrowed(0, 0..<1), conditional: prediction.narrowed(0, 1..<2), scale: 1.5)
                    current = try scheduler.step(guided, at: t, sample: current).previous
                }
            }
            let d = try seconds { _ = try vae.decode(current.permuted([0, 2, 1, 3, 4]).reshaped([frames, 4, h, h])).floats().count }
            if iteration > 0 {  // the first window warms up (cuDNN autotuning, allocator)
                // One Whisper window serves 30 s = 750 video frames; a 16-frame window's share is 16/750 of it.
                times.whisper += w * Double(frames) / 750; times.encode += e; times.unet += u; times.decode += d
            }
        }
    }
    let n = Double(iterations), total = (times.whisper + times.encode + times.unet + times.decode) / n
    let peak = try backend.memoryStats(device)?.peakAllocated ?? 0
    if let profile {
        let sample = try Tensor((0..<(2 * 13 * frames * h * h)).map { _ in Float.random(in: -1...1) }, shape: [2, 13, frames, h, h], device: device)
        try backend.synchronize(device)
        try backend.profiled(cuda: device != .cpu, to: profile) {
            try backend.inferenceMode { _ = try unet(sample, timestep: 501, context: context) }
            try backend.synchronize(device)
        }
    }
    // A whole clip: ⌈frames/16⌉ windows through LipsyncWindow, u8 frames to and from the host.
    var clip = ""
    if let clipFrames {
        var g = SeededGenerator(seed: 11)
        let window = LipsyncWindow(unet: unet, vae: vae, scheduler: scheduler, guidance: 1.5, device: device, deepCache: deepCache, cudaGraphs: cudaGraphs)
        // The reference's mask shape: keep everything but a lower-middle rectangle (the mouth).
        let mask = LipsyncWindow.Mask(u8: (0..<(resolution * resolution)).map { p in
            let (y, x) = (p / resolution, p % resolution)
            return y >= resolution * 5 / 8 && y < resolution * 15 / 16 && x >= resolution / 8 && x < resolution * 7 / 8 ? 0 : 255
        }, size: resolution)
        let faces = (0..<clipFrames).map { _ in (0..<(resolution * resolution * 3)).map { _ in UInt8(truncatingIfNeeded: g.next() >> 56) } }
        let chunks = (0..<(clipFrames * 50 * 384)).map { _ in g.symmetricUnit() }
        let noise = (0..<(4 * h * h)).map { _ in g.symmetricUnit() }
        func run(_ count: Int) throws -> Int {
            var produced = 0
            for start in stride(from: 0, to: count, by: frames) {
                let end = min(start + frames, count)
                let audio = try Tensor(Array(chunks[(start * 50 * 384)..<(end * 50 * 384)]), shape: [end - start, 50, 384], device: device)
                try backend.inferenceMode {
                    produced += try LipsyncWindow.frames(window.generate(frames: Array(faces[start..<end]), mask: mask, audio: audio, noise: noise)).count
                }
            }
            return produced
        }
        _ = try run(frames)  // warm-up, as the reference script does
        try backend.resetPeakMemory(device)
        var produced = 0
        let seconds = try seconds { produced = try run(clipFrames) }
        precondition(produced == clipFrames)
        let clipPeak = try backend.memoryStats(device)?.peakAllocated ?? 0
        clip = ",\"clip_frames\":\(clipFrames),\"clip_seconds\":\(seconds),\"clip_frames_per_s\":\(Double(clipFrames) / seconds),\"clip_peak_bytes\":\(clipPeak)"
        if let g = window.graphs {
            clip += ",\"clip_graph_replays\":\(g.replays),\"clip_eager_forwards\":\(g.eager),\"clip_graph_failures\":\(g.failures.count)"
            for failure in g.failures { printError("graph: \(failure)\n") }
        }
    }
    print("{\"impl\":\"swift\",\"model\":\"generator\",\"dtype\":\"\(dtype)\",\"resolution\":\(resolution),\"deepcache\":\(deepCache ?? 0),\"unet_parameters\":\(parameters),"
          + "\"channels_last\":\(unet.channelsLast),\"cuda_graphs\":\(graphs != nil)\(clip),"
          + "\"seconds_per_window\":\(total),\"frames_per_s\":\(Double(frames) / total),\"share_unet\":\(times.unet / n / total),"
          + "\"share_vae_encode\":\(times.encode / n / total),\"share_vae_decode\":\(times.decode / n / total),\"share_whisper\":\(times.whisper / n / total),"
          + "\"peak_bytes\":\(peak)}")
}

/// Seconds per iteration of `body` (after warm-up), with the device synchronised around the timing.
func timed(_ backend: TorchBackend, _ device: Device, iterations: Int, warmup: Int = 3, _ body: () throws -> Void) throws -> Double {
    for _ in 0..<warmup { try body() }
    try backend.synchronize(device)
    let clock = ContinuousClock(), start = clock.now
    for _ in 0..<iterations { try body() }
    try backend.synchronize(device)
    let elapsed = clock.now - start
    return (Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) * 1e-18) / Double(iterations)
}

func bench(device: Device, dtype: DType, iterations: Int) throws {
    let backend = try TorchBackend.shared()
    try backend.manualSeed(1)
    func run(_ body: () throws -> Tensor) throws {
        _ = try backend.inferenceMode { dtype == .float32 ? try body() : try backend.autocast(dtype, body) }
    }
    func line(_ model: String, batch: String, clipsPerBatch: Int, seconds: Double) throws {
        let peak = try backend.memoryStats(device)?.peakAllocated ?? 0
        print("{\"impl\":\"swift\",\"model\":\"\(model)\",\"dtype\":\"\(dtype)\",\"batch\":\"\(batch)\",\"seconds_per_batch\":\(seconds),"
              + "\"clips_per_s\":\(Double(clipsPerBatch) / seconds),\"peak_bytes\":\(peak)}")
    }
    // SyncNet v2: one 10 s clip = 250 frames → 245 windows of 5 frames and their 20 MFCC columns.
    do {
        let model = try SyncNetV2(WeightSource(.random(RandomWeights(seed: 1)), device: device))
        let windows = 245
        let lip = try Tensor([Float](repeating: 0, count: windows * 3 * 5 * 224 * 224).map { _ in Float.random(in: 0...255) },
                             shape: [windows, 3, 5, 224, 224], device: device)
        let audio = try Tensor((0..<(windows * 13 * 20)).map { _ in Float.random(in: -20...20) }, shape: [windows, 1, 13, 20], device: device)
        try backend.resetPeakMemory(device)
        let seconds = try timed(backend, device, iterations: iterations) {
            try run { try model.forwardLip(lip) }
            try run { try model.forwardAudio(audio) }
        }
        try line("syncnet_v2", batch: "245 windows (one 10 s clip)", clipsPerBatch: 1, seconds: seconds)
    }
    // hyperIQA: 64 clips × (first, middle, last frame).
    do {
        let model = try HyperIQA(WeightSource(.random(RandomWeights(seed: 2)), device: device))
        let images = 192
        let input = try Tensor((0..<(images * 3 * 224 * 224)).map { _ in Float.random(in: -2...2) }, shape: [images, 3, 224, 224], device: device)
        try backend.resetPeakMemory(device)
        let seconds = try timed(backend, device, iterations: iterations) { try run { try model(input) } }
        try line("hyperiqa", batch: "192 images (64 clips x 3 frames)", clipsPerBatch: 64, seconds: seconds)
    }
}

func benchTrain(devices: [Device], dtype: DType, batch: Int, accumulation: Int, steps: Int) throws {
    let device = devices[0]
    let backend = try TorchBackend.shared()
    try backend.cudnnBenchmark(true)
    let precision: TrainingPrecision = switch dtype {
    case .float16: .float16
    case .bfloat16: .bfloat16
    default: .float32
    }
    let trainer = try SyncNetTrainer(config: .syncnet16PixelAttention, devices: devices, precision: precision, optimizer: AdamW.Settings(), seed: 1)
    // `batch` samples per device per micro-batch.
    let total = batch * devices.count
    var g = SeededGenerator(seed: 9)
    let data = SyncNetBatch(frames: (0..<(total * 48 * 128 * 256)).map { _ in UInt8(truncatingIfNeeded: g.next() >> 56) },
                            mel: (0..<(total * 80 * 52)).map { _ in g.symmetricUnit() * 4 },
                            labels: (0..<total).map { Float($0 % 2) }, frameShape: [48, 128, 256])
    // As the baseline: the batch is put on the device once; then the same with an upload from the host
    // every step (what a loop without a prefetching loader pays).
    let resident = try Array(repeating: trainer.upload(data), count: accumulation)
    for _ in 0..<2 { _ = try trainer.step(uploaded: resident) }
    for d in devices { try backend.synchronize(d) }
    try backend.resetPeakMemory(device)
    var loss = 0.0
    let seconds = try timed(backend, device, iterations: steps, warmup: 0) { loss = try trainer.step(uploaded: resident).loss }
    let peak = try backend.memoryStats(device)?.peakAllocated ?? 0
    let withUpload = try timed(backend, device, iterations: max(2, steps / 2), warmup: 0) {
        _ = try trainer.step(uploaded: (0..<accumulation).map { _ in try trainer.upload(data) })
    }
    print("{\"impl\":\"swift\",\"model\":\"stable_syncnet_train\",\"dtype\":\"\(precision.rawValue)\",\"batch\":\(batch),\"accumulation\":\(accumulation),"
          + "\"devices\":\(devices.count),\"steps\":\(steps),\"step_s\":\(seconds),\"samples_per_s\":\(Double(total * accumulation) / seconds),\"peak_mb\":\(peak >> 20),"
          + "\"step_with_upload_s\":\(withUpload),\"params\":\(try trainer.replicas[0].collector.parameterCount()),\"last_loss\":\(loss)}")
}

do {
    let backend = try TorchBackend.shared()
    let device = try backend.device(option("--device", "auto"))
    printError("backend \(backend.path), libtorch \(backend.torchVersion), \(backend.cudaDeviceCount) CUDA device(s); running on \(device)\n")
    if mode == "parity" {
        // True float32 on CUDA for parity (PyTorch lets cuDNN use TF32 by default).
        try backend.allowTF32(matmul: false, convolution: false)
        let models = Set(option("--models", "syncnet_v2,stable_syncnet,hyperiqa,whisper,ddim,vae,unet,lipsync").split(separator: ",").map(String.init))
        try parity(URL(fileURLWithPath: arguments[1]), device: device, models: models)
        try generatorParity(URL(fileURLWithPath: arguments[1]), device: device, models: models)
    } else {
        let dtype: DType = switch option("--dtype", "float32") {
        case "float16": .float16
        case "bfloat16": .bfloat16
        default: .float32
        }
        if mode == "bench-train" {
            let devices = try option("--devices", "").split(separator: ",").map { try backend.device(String($0)) }
            try benchTrain(devices: devices.isEmpty ? [device] : devices, dtype: dtype, batch: Int(option("--batch", "256")) ?? 256,
                           accumulation: Int(option("--accumulation", "1")) ?? 1, steps: Int(option("--steps", "10")) ?? 10)
        } else if mode == "bench" {
            try bench(device: device, dtype: dtype, iterations: Int(option("--iterations", "10")) ?? 10)
        } else {
            try benchGenerator(device: device, dtype: dtype, resolution: Int(option("--resolution", "256")) ?? 256, iterations: Int(option("--iterations", "3")) ?? 3,
                               deepCache: Int(option("--deepcache", "0")).flatMap { $0 > 0 ? $0 : nil }, clipFrames: Int(option("--frames", "")),
                               channelsLast: Int(option("--channels-last", "")).map { $0 != 0 }, profile: arguments.contains("--profile") ? option("--profile", "") : nil)
        }
    }
} catch {
    print("FAIL \(error)")
    failures += 1
}
exit(failures == 0 ? 0 : 1)
