import Foundation
import Inference
import Testing

/// The torch backend through its C ABI: loading, host round trips and the operations the models
/// use, each against a straightforward Swift computation. The backend must be present (CI builds it
/// with scripts/build-torch-backend.sh); these tests fail rather than skip without it.
@Suite struct TensorTests {
    static func random(_ n: Int, seed: UInt64) -> [Float] {
        var state = seed &* 0x9E37_79B9_7F4A_7C15
        return (0..<n).map { _ in
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return Float(Int64(bitPattern: state >> 11) % 2000) / 1000 - 1
        }
    }

    static func close(_ a: [Float], _ b: [Float], _ tolerance: Float = 1e-5) -> Bool {
        a.count == b.count && zip(a, b).allSatisfy { abs($0 - $1) <= tolerance * max(1, abs($1)) }
    }

    @Test func backendLoadsAndRoundTrips() throws {
        let backend = try TorchBackend.shared()
        #expect(backend.torchVersion.split(separator: ".").count >= 3, "\(backend.torchVersion)")
        let values = Self.random(24, seed: 1)
        let t = try Tensor(values, shape: [2, 3, 4])
        #expect(try t.shape == [2, 3, 4])
        #expect(try t.floats() == values)
        #expect(try t.reshaped([4, 6]).shape == [4, 6])
        #expect(try (t + t).floats() == values.map { $0 + $0 })
        print("torch backend \(backend.path), libtorch \(backend.torchVersion), \(backend.cudaDeviceCount) CUDA device(s)")
    }

    @Test func linearAndMatmulMatchADirectProduct() throws {
        let x = Self.random(3 * 5, seed: 2), w = Self.random(4 * 5, seed: 3), b = Self.random(4, seed: 4)
        let y = try Functional.linear(Tensor(x, shape: [3, 5]), weight: Tensor(w, shape: [4, 5]), bias: Tensor(b, shape: [4])).floats()
        var expected: [Float] = []
        for i in 0..<3 {
            for o in 0..<4 {
                var sum = b[o]
                for k in 0..<5 { sum += x[i * 5 + k] * w[o * 5 + k] }
                expected.append(sum)
            }
        }
        #expect(Self.close(y, expected))
        let m = try Tensor(x, shape: [3, 5]).matmul(Tensor(w, shape: [5, 4])).floats()
        var direct: [Float] = []
        for i in 0..<3 {
            for j in 0..<4 {
                var sum: Float = 0
                for k in 0..<5 { sum += x[i * 5 + k] * w[k * 4 + j] }
                direct.append(sum)
            }
        }
        #expect(Self.close(m, direct))
    }

    /// 2-D convolution with stride 2 and padding 1 against the definition.
    @Test func convolutionMatchesTheDefinition() throws {
        let (n, c, h, w, o, k) = (1, 2, 7, 6, 3, 3)
        let x = Self.random(n * c * h * w, seed: 5), weight = Self.random(o * c * k * k, seed: 6), bias = Self.random(o, seed: 7)
        let y = try Functional.convolution(Tensor(x, shape: [n, c, h, w]), weight: Tensor(weight, shape: [o, c, k, k]), bias: Tensor(bias, shape: [o]),
                                           stride: [2, 2], padding: [1, 1])
        let (oh, ow) = ((h + 2 - k) / 2 + 1, (w + 2 - k) / 2 + 1)
        #expect(try y.shape == [n, o, oh, ow])
        var expected: [Float] = []
        for oc in 0..<o { for yy in 0..<oh { for xx in 0..<ow {
            var sum = bias[oc]
            for ic in 0..<c { for dy in 0..<k { for dx in 0..<k {
                let sy = yy * 2 - 1 + dy, sx = xx * 2 - 1 + dx
                if sy >= 0 && sy < h && sx >= 0 && sx < w { sum += x[(ic * h + sy) * w + sx] * weight[((oc * c + ic) * k + dy) * k + dx] }
            } } }
            expected.append(sum)
        } } }
        #expect(Self.close(try y.floats(), expected))
    }

    @Test func batchNormAndPoolingMatchTheirFormulas() throws {
        let x = Self.random(2 * 3 * 4 * 4, seed: 8)
        let mean: [Float] = [0.1, -0.2, 0.3], variance: [Float] = [0.5, 1.5, 2.0], gamma: [Float] = [1.1, 0.9, 1.0], beta: [Float] = [0, 0.1, -0.1]
        let y = try Functional.batchNorm(Tensor(x, shape: [2, 3, 4, 4]), mean: Tensor(mean, shape: [3]), variance: Tensor(variance, shape: [3]),
                                         weight: Tensor(gamma, shape: [3]), bias: Tensor(beta, shape: [3]), eps: 1e-5).floats()
        let expected = x.indices.map { i -> Float in
            let ch = (i / 16) % 3
            return (x[i] - mean[ch]) / (variance[ch] + 1e-5).squareRoot() * gamma[ch] + beta[ch]
        }
        #expect(Self.close(y, expected))
        let pooled = try Functional.maxPool(Tensor(x, shape: [2, 3, 4, 4]), kernel: [2, 2], stride: [2, 2], padding: [0, 0])
        #expect(try pooled.shape == [2, 3, 2, 2])
        let first = try pooled.floats()[0]
        #expect(first == [x[0], x[1], x[4], x[5]].max()!)
        #expect(try Tensor([-1, 0, 2], shape: [3]).relu().floats() == [0, 0, 2])
    }

    /// Mistakes come back as errors with libtorch's explanation, and a CUDA device on a CPU-only
    /// backend is refused with a clear message.
    @Test func errorsAreClear() throws {
        let backend = try TorchBackend.shared()
        let error = #expect(throws: TorchError.self) { try Tensor([1, 2, 3], shape: [1, 3]).matmul(Tensor([1, 2], shape: [2, 1])) }
        #expect(error.map(String.init(describing:))?.contains("matmul") == true, "\(String(describing: error))")
        #expect(try backend.device("cpu") == .cpu)
        #expect(throws: TorchError.self) { try backend.device("gpu") }
        if backend.cudaDeviceCount == 0 {
            let cuda = #expect(throws: TorchError.self) { try backend.device("cuda:0") }
            #expect(cuda.map(String.init(describing:))?.contains("no CUDA device") == true)
            #expect(try backend.device("auto") == .cpu)
        }
        #expect(throws: TorchError.self) { try TorchBackend.load("/nonexistent/libpipelined_torch.so") }
    }

    /// Execution control on the CPU backend: scopes return their body's value and nest; autocast
    /// leaves CPU tensors in float32 and refuses a non-half type; CUDA-only facilities say so.
    @Test func executionControlsOnTheCPU() throws {
        let backend = try TorchBackend.shared()
        let x = try Tensor([1, -2, 3, -4], shape: [2, 2])
        let y = try backend.inferenceMode { try backend.noGrad { try x.relu() } }
        #expect(try y.floats() == [1, 0, 3, 0])
        let z = try backend.autocast(.float16) { try x.matmul(x) }
        let product = try z.floats()
        #expect(z.dtype == .float32 && product == [-5, 6, -9, 10])
        #expect(throws: TorchError.self) { try backend.autocast(.float32) { 0 } }
        #expect(try backend.memoryStats(.cpu) == nil)
        try backend.synchronize(.cpu)
        try backend.manualSeed(42)
        try backend.cudnnBenchmark(false)
        try backend.allowTF32(matmul: false, convolution: true)
        if !backend.builtWithCUDA { #expect(throws: TorchError.self) { try backend.memoryStats(.cuda(0)) } }
        #expect(x.device == .cpu)
        // Half-precision weights: values round to float16 and results come back as float32 on the host.
        let half = try x.to(.cpu, .float16)
        let halfValues = try half.floats()
        #expect(half.dtype == .float16 && halfValues == [1, -2, 3, -4])
    }

    /// The operations StableSyncNet, hyperIQA and the generator add, against their definitions.
    @Test func normsAttentionAndShapeOperationsMatchTheirDefinitions() throws {
        let values: [Float] = (0..<24).map { Float($0 % 7) - 3 }
        let x = try Tensor(values, shape: [1, 4, 2, 3])
        // GroupNorm with 2 groups: each group (2 channels × 6 values) to mean 0, variance 1.
        let g = try Functional.groupNorm(x, groups: 2, weight: nil, bias: nil, eps: 0).floats()
        for group in 0..<2 {
            let part = Array(values[(group * 12)..<((group + 1) * 12)]), out = Array(g[(group * 12)..<((group + 1) * 12)])
            let mean = part.reduce(0, +) / 12, variance = part.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / 12
            #expect(Self.close(out, part.map { ($0 - mean) / variance.squareRoot() }, 1e-4))
        }
        // Attention: one query against two keys.
        let q = try Tensor([1, 0], shape: [1, 1, 2]), k = try Tensor([1, 0, 0, 1], shape: [1, 2, 2]), v = try Tensor([10, 20], shape: [1, 2, 1])
        let a = try Functional.attention(q: q, k: k, v: v).floats()
        let w0 = exp(Float(1) / Float(2).squareRoot()), w1: Float = 1
        #expect(Self.close(a, [(10 * w0 + 20 * w1) / (w0 + w1)], 1e-5))
        // Padding (left 1, right 0, top 0, bottom 1), nearest upsampling, narrowing, permuting, concatenation, clamping, reductions.
        let small = try Tensor([1, 2, 3, 4], shape: [1, 1, 2, 2])
        #expect(try Functional.pad(small, [1, 0, 0, 1]).floats() == [0, 1, 2, 0, 3, 4, 0, 0, 0])
        #expect(try Functional.upsampleNearest(small, factors: [2, 2]).floats() == [1, 1, 2, 2, 1, 1, 2, 2, 3, 3, 4, 4, 3, 3, 4, 4])
        #expect(try small.narrowed(3, 1..<2).floats() == [2, 4])
        #expect(try small.permuted([0, 1, 3, 2]).floats() == [1, 3, 2, 4])
        #expect(try Tensor.cat([small, small], dim: 2).shape == [1, 1, 4, 2])
        #expect(try small.clamped(2, 3).floats() == [2, 2, 3, 3])
        #expect(try small.mean([2, 3]).floats() == [2.5])
        #expect(try small.sum([3]).floats() == [3, 7])
        #expect(Self.close(try Functional.normalize(Tensor([3, 4], shape: [1, 2]), dim: 1).floats(), [0.6, 0.8]))
        #expect(Self.close(try small.activation(.sigmoid).floats(), [1, 2, 3, 4].map { 1 / (1 + exp(-$0)) }))
        #expect(Self.close(try Functional.avgPool(small, kernel: [2, 2], stride: [2, 2]).floats(), [2.5]))
    }

    /// `group_norm_frames` on (B·F, C, H, W) equals the reference's GroupNorm of the (B, C, F, H, W)
    /// view (statistics pooled over each item's frames), with and without SiLU, from either layout;
    /// frames = 1 is a per-frame GroupNorm.
    @Test func groupNormOverFramesMatchesTheFiveDimensionalOne() throws {
        let (items, frames, c, h, w) = (2, 3, 64, 4, 5)
        let x = try Tensor(Self.random(items * frames * c * h * w, seed: 7).enumerated().map { $0.element * 3 + Float($0.offset % 11) }, shape: [items * frames, c, h, w])
        let weight = try Tensor(Self.random(c, seed: 8).map { $0 + 1 }, shape: [c]), bias = try Tensor(Self.random(c, seed: 9), shape: [c])
        let five = try x.reshaped([items, frames, c, h, w]).permuted([0, 2, 1, 3, 4])
        let expected = try Functional.groupNorm(five, groups: 32, weight: weight, bias: bias, eps: 1e-5).permuted([0, 2, 1, 3, 4]).reshaped([items * frames, c, h, w])
        let perFrame = try Functional.groupNorm(x, groups: 32, weight: weight, bias: bias, eps: 1e-6)
        for channelsLast in [false, true] {
            let input = try x.contiguous(channelsLast: channelsLast)
            #expect(try input.floats() == x.floats())
            let y = try Functional.groupNorm(frames: input, frames: frames, groups: 32, weight: weight, bias: bias, eps: 1e-5)
            #expect(Self.close(try y.floats(), try expected.floats(), 1e-5), "channels-last \(channelsLast)")
            let activated = try Functional.groupNorm(frames: input, frames: frames, groups: 32, weight: weight, bias: bias, eps: 1e-5, silu: true)
            #expect(Self.close(try activated.floats(), try expected.activation(.silu).floats(), 1e-5))
            let single = try Functional.groupNorm(frames: input, frames: 1, groups: 32, weight: weight, bias: bias, eps: 1e-6)
            #expect(Self.close(try single.floats(), try perFrame.floats(), 1e-5))
        }
        #expect(throws: TorchError.self) { try Functional.groupNorm(frames: x, frames: 4, groups: 32, weight: weight, bias: bias, eps: 1e-5) }
    }

    /// `geglu_linear` is diffusers' GEGLU: the projection's first half times the exact GELU of its
    /// second half, over (…, C) inputs of any rank; a weight that does not split in halves is refused.
    @Test func gegluLinearMatchesItsDefinition() throws {
        let (rows, c, inner) = (6, 8, 12)
        let x = Self.random(rows * c, seed: 21).map { $0 * 2 }, w = Self.random(2 * inner * c, seed: 22), b = Self.random(2 * inner, seed: 23)
        var expected: [Float] = []
        for r in 0..<rows {
            let y = (0..<(2 * inner)).map { o in (0..<c).reduce(b[o]) { $0 + x[r * c + $1] * w[o * c + $1] } }
            expected += (0..<inner).map { j in y[j] * 0.5 * y[inner + j] * (1 + erf(y[inner + j] / Float(2).squareRoot())) }
        }
        let weight = try Tensor(w, shape: [2 * inner, c]), bias = try Tensor(b, shape: [2 * inner])
        let out = try Functional.gegluLinear(Tensor(x, shape: [2, 3, c]), weight: weight, bias: bias)
        #expect(try out.shape == [2, 3, inner])
        #expect(Self.close(try out.floats(), expected, 1e-5))
        #expect(throws: TorchError.self) { try Functional.gegluLinear(Tensor(x, shape: [rows, c]), weight: Tensor(Array(w[0..<(7 * c)]), shape: [7, c]), bias: nil) }
    }

    /// `layerNorm(_:addingPerFrame:)` is LayerNorm over the last dimension followed by the table's row f
    /// added to every row of frame f of (…, F, L, C); a table of the wrong size is refused.
    @Test func layerNormAddingPerFrameMatchesItsDefinition() throws {
        let (b, f, l, c) = (2, 3, 4, 8)
        let x = Self.random(b * f * l * c, seed: 31).enumerated().map { $0.element * 3 + Float($0.offset % 5) }
        let gamma = Self.random(c, seed: 32).map { $0 + 1 }, beta = Self.random(c, seed: 33), table = Self.random(f * c, seed: 34)
        var expected: [Float] = []
        for row in 0..<(b * f * l) {
            let values = Array(x[(row * c)..<((row + 1) * c)])
            let mean = values.reduce(0, +) / Float(c)
            let variance = values.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Float(c)
            let frame = (row / l) % f
            expected += (0..<c).map { (values[$0] - mean) / (variance + 1e-5).squareRoot() * gamma[$0] + beta[$0] + table[frame * c + $0] }
        }
        let out = try Functional.layerNorm(Tensor(x, shape: [b, f, l, c]), weight: Tensor(gamma, shape: [c]), bias: Tensor(beta, shape: [c]), eps: 1e-5,
                                           addingPerFrame: Tensor(table, shape: [1, f, c]))
        #expect(try out.shape == [b, f, l, c])
        #expect(Self.close(try out.floats(), expected, 1e-4))
        #expect(throws: TorchError.self) {
            try Functional.layerNorm(Tensor(x, shape: [b, f, l, c]), weight: Tensor(gamma, shape: [c]), bias: Tensor(beta, shape: [c]), eps: 1e-5,
                                     addingPerFrame: Tensor(Array(table[0..<(2 * c)]), shape: [2, c]))
        }
    }

    /// The profiler records the operators run under it and writes a Chrome trace — or, with a libtorch
    /// built without Kineto (Debian's), says exactly that.
    @Test func profilerWritesAChromeTrace() throws {
        let backend = try TorchBackend.shared()
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("profile-\(UUID().uuidString).json").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        let a = try Tensor(Self.random(64 * 64, seed: 3), shape: [64, 64])
        let product: Tensor
        do {
            product = try backend.profiled(cuda: false, to: path) { try a.matmul(a) }
        } catch {
            #expect("\(error)".contains("Kineto"), "\(error)")
            #expect(!FileManager.default.fileExists(atPath: path))
            return
        }
        #expect(try product.shape == [64, 64])
        let trace = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as? [String: Any]
        let names = (trace?["traceEvents"] as? [[String: Any]] ?? []).compactMap { $0["name"] as? String }
        #expect(names.contains { $0.hasPrefix("aten::m") }, "\(names.prefix(20))")
    }
}
