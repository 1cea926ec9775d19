import Foundation
import Inference
import PipelineTestSupport
import Testing

/// Training primitives against their definitions (torch.optim.AdamW, F.binary_cross_entropy,
/// clip_grad_norm_, GradScaler's overflow check) and the trainer's data parallelism and gradient
/// accumulation against a plain single-device step.
@Suite struct TrainingTests {
    let backend: TorchBackend
    init() throws { backend = try TorchBackend.shared() }

    /// A parameter with gradient `g` (from the loss Σ p·g).
    func parameter(_ values: [Float], gradient g: [Float]) throws -> Tensor {
        let p = try Tensor(values, shape: [values.count])
        try p.requiresGrad()
        try (p * Tensor(g, shape: [g.count])).sum([0]).backward()
        return p
    }

    @Test func adamwFollowsTorchsAlgorithm() throws {
        let start: [Float] = [1, -2, 3, 0.5], g: [Float] = [0.3, -1.5, 2, 0]
        let p = try parameter(start, gradient: g)
        let settings = AdamW.Settings(learningRate: 0.1, weightDecay: 0.01)
        let optimizer = try AdamW(keys: ["p"], parameters: [p], settings: settings)
        var expected = start.map(Double.init), m = [Double](repeating: 0, count: 4), v = m
        for step in 1...3 {
            try optimizer.update()
            for i in 0..<4 {
                let gi = Double(g[i])
                expected[i] *= 1 - 0.1 * 0.01
                m[i] = 0.9 * m[i] + 0.1 * gi
                v[i] = 0.999 * v[i] + 0.001 * gi * gi
                let mHat = m[i] / (1 - pow(0.9, Double(step))), vHat = v[i] / (1 - pow(0.999, Double(step)))
                expected[i] -= 0.1 * mHat / (vHat.squareRoot() + 1e-8)
            }
        }
        let got = try p.floats()
        for i in 0..<4 { #expect(abs(Double(got[i]) - expected[i]) < 1e-5, "p[\(i)] \(got[i]) vs \(expected[i])") }
        #expect(optimizer.step == 3)
        // The state round-trips: a second optimiser restored from it takes the same next step.
        let state = try optimizer.state()
        #expect(state.keys.sorted() == ["exp_avg.p", "exp_avg_sq.p"])
        let q = try parameter(got, gradient: g)
        let restored = try AdamW(keys: ["p"], parameters: [q], settings: settings)
        try restored.restore(SafeTensors(data: SafeTensors.serialize(state)), step: 3)
        try optimizer.update(); try restored.update()
        #expect(try p.floats() == q.floats())
    }

    @Test func binaryCrossEntropyAndItsGradient() throws {
        let x: [Float] = [0.2, 0.7, 0.9, 0.5], y: [Float] = [0, 1, 1, 0]
        let p = try Tensor(x, shape: [4])
        try p.requiresGrad()
        let loss = try Functional.binaryCrossEntropy(p, Tensor(y, shape: [4]))
        var expected = 0.0
        for (xi, yi) in zip(x, y) { expected -= (yi == 1 ? log(Double(xi)) : log(1 - Double(xi))) / 4 }
        #expect(abs(Double(try loss.scalar()) - expected) < 1e-6)
        try loss.backward()
        let grad = try #require(try p.gradient()).floats()
        for i in 0..<4 {
            let want = Double(x[i] - y[i]) / (Double(x[i]) * Double(1 - x[i])) / 4
            #expect(abs(Double(grad[i]) - want) < 1e-5)
        }
    }

    @Test func clippingAndOverflowDetection() throws {
        let a = try parameter([1, 1], gradient: [3, 4]), b = try parameter([1], gradient: [12])
        let norm = try backend.clipGradientNorm([a, b], maxNorm: 6.5)
        #expect(abs(norm - 13) < 1e-5)
        let clipped = try #require(try a.gradient()).floats() + #require(try b.gradient()).floats()
        #expect(abs(clipped.reduce(0) { $0 + Double($1 * $1) }.squareRoot() - 6.5) < 1e-4)
        // Below the limit nothing changes (the coefficient is clamped at 1).
        let c = try parameter([1], gradient: [0.5])
        #expect(abs(try backend.clipGradientNorm([c], maxNorm: 1) - 0.5) < 1e-6)
        #expect(try #require(try c.gradient()).floats() == [0.5])

        #expect(try backend.scaleGradients([a, b], by: 0.5) == false)
        #expect(abs(try #require(try b.gradient()).floats()[0] - Float(12 * 6.5 / 13 * 0.5)) < 1e-4)
        let bad = try parameter([1, 2], gradient: [.infinity, 1])
        #expect(try backend.scaleGradients([a, bad], by: 1) == true)
        try backend.clearGradients([a, bad])
        #expect(try a.gradient() == nil)
    }

    @Test func scalerBacksOffAndGrows() {
        var scaler = GradScaler(scale: 1024)
        scaler.growthInterval = 3
        scaler.update(foundNonFinite: true)
        #expect(scaler.scale == 512)
        for _ in 0..<3 { scaler.update(foundNonFinite: false) }
        #expect(scaler.scale == 1024 && scaler.growthTracker == 0)
    }

    /// A small StableSyncNet for 32×32 faces (visual input 48×16×32).
    static let tiny = StableSyncNet.Config(
        audio: .init(inChannels: 1, blockOutChannels: [32, 32, 32, 32, 64, 128], downsampleFactors: [.pair(2, 1), .both(2), .both(2), .both(2), .both(2), .pair(2, 3)],
                     attentionBlocks: [false, false, false, false, true, false]),
        visual: .init(inChannels: 48, blockOutChannels: [32, 32, 32, 64, 128], downsampleFactors: [.pair(1, 2), .both(2), .both(2), .both(2), .both(2)],
                      attentionBlocks: [false, false, false, true, false]),
        resolution: 32)

    static func batch(_ n: Int, seed: UInt64) -> SyncNetBatch {
        var g = SeededGenerator(seed: seed)
        return SyncNetBatch(frames: (0..<(n * 48 * 16 * 32)).map { _ in UInt8(truncatingIfNeeded: g.next() >> 56) }, mel: (0..<(n * 80 * 52)).map { _ in g.symmetricUnit() * 4 },
                            labels: (0..<n).map { Float($0 % 2) }, frameShape: [48, 16, 32])
    }

    /// Two replicas on half the batch each (gradients averaged across them), and two accumulated
    /// micro-batches, both give the weights of one step on the whole batch.
    @Test func dataParallelAndAccumulationMatchOneBigStep() throws {
        // eps = 1 makes AdamW's first update ≈ lr·g (instead of lr·sign(g), which would turn rounding-level
        // differences of near-zero gradients into ±lr), so equal gradients show as equal weights.
        let settings = AdamW.Settings(learningRate: 1, eps: 1, weightDecay: 0)
        let batch = Self.batch(8, seed: 3)
        func trained(_ devices: [Device], _ micro: [SyncNetBatch]) throws -> ([String: HostTensor], Double) {
            let trainer = try SyncNetTrainer(config: Self.tiny, devices: devices, precision: .float32, optimizer: settings, seed: 5)
            let report = try trainer.step(micro)
            return (try trainer.modelState(), report.loss)
        }
        let (reference, loss) = try trained([.cpu], [batch])
        let (parallel, parallelLoss) = try trained([.cpu, .cpu], [batch])
        let (accumulated, accumulatedLoss) = try trained([.cpu], [batch.slice(0..<4), batch.slice(4..<8)])
        #expect(abs(parallelLoss - loss) < 1e-6 && abs(accumulatedLoss - loss) < 1e-6)
        var changed = 0
        let fresh = try SyncNetTrainer(config: Self.tiny, devices: [.cpu], precision: .float32, optimizer: settings, seed: 5).modelState()
        for (key, tensor) in reference {
            let r = tensor.floats(), p = parallel[key]!.floats(), a = accumulated[key]!.floats()
            let dp = maxDifference(r, p), da = maxDifference(r, a)
            #expect(dp < 1e-5 && da < 1e-5, "\(key): data parallel differs by \(dp), accumulation by \(da)")
            if fresh[key]!.floats() != r { changed += 1 }
        }
        #expect(changed > reference.count / 2, "the step should move most tensors (\(changed) of \(reference.count) changed)")
    }

    /// Bytes (B, 16, H, W, 3) become the reference's (B, 16, 3, H, W) / 127.5 − 1 folded to (B, 48, H, W).
    @Test func framesBecomeTheReferenceInput() throws {
        var g = SeededGenerator(seed: 4)
        let bytes = (0..<(2 * 16 * 3 * 5 * 3)).map { _ in UInt8(truncatingIfNeeded: g.next() >> 56) }
        let input = try bytes.withUnsafeBytes { try StableSyncNet.visualInput(Tensor(bytes: $0, dtype: .uint8, shape: [2, 16, 3, 5, 3])) }
        #expect(try input.shape == [2, 48, 3, 5])
        let values = try input.floats()
        for b in 0..<2 { for t in 0..<16 { for c in 0..<3 { for y in 0..<3 { for x in 0..<5 {
            let want = Float(bytes[(((b * 16 + t) * 3 + y) * 5 + x) * 3 + c]) / 127.5 - 1
            #expect(abs(values[(((b * 48) + t * 3 + c) * 3 + y) * 5 + x] - want) < 1e-6)
        } } } } }
    }

    @Test func mixedPrecisionIsRefusedOnTheCPU() {
        #expect(throws: TorchError.self) {
            try SyncNetTrainer(config: Self.tiny, devices: [.cpu], precision: .float16, optimizer: .init())
        }
    }
}

extension TrainingTests {
    /// Forward, BCE, backward, clipping and AdamW together: a small model memorises one fixed batch.
    @Test func memorisesAFixedBatch() throws {
        let trainer = try SyncNetTrainer(config: Self.tiny, devices: [.cpu], precision: .float32, optimizer: AdamW.Settings(learningRate: 1e-3), seed: 5)
        let batch = Self.batch(16, seed: 3)
        let first = try trainer.step([batch]).loss
        for _ in 0..<25 { _ = try trainer.step([batch]) }
        let cosines = try trainer.cosines(batch)
        let correct = zip(cosines, batch.labels).filter { ($0 > 0.5) == ($1 == 1) }.count
        #expect(first > 0.5 && correct == 16, "first loss \(first), cosines \(cosines)")
        #expect(trainer.optimizerStep == 26)
    }
}
