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
}
