#if canImport(FoundationEssentials)
import FoundationEssentials  // Data, URL, JSON coding: keeps binaries that link Inference small (no ICU)
#else
import Foundation
#endif

/// hyperIQA (Su et al., CVPR 2020; `SSL92/hyperIQA` `models.py`) with LatentSync's configuration
/// `HyperNet(16, 112, 224, 112, 56, 28, 14, 7)`, the visual-quality filter: a ResNet-50 backbone with
/// local-distortion-aware heads gives a 224-d target input; a hyper-network turns layer4's features
/// into the weights of a per-image 4-layer MLP (224 → 112 → 56 → 28 → 14 → 1) that scores quality on
/// KonIQ's 0–100 scale. Inputs must be 224×224, ImageNet-normalised. Keys as in `koniq_pretrained.pkl`.
public struct HyperIQA: Sendable {
    /// The target network's layer widths (input first); LatentSync's values.
    public static let targetWidths = [224, 112, 56, 28, 14]
    static let hyperChannels = 112, featureSize = 7, ldaChannels = 16

    let backbone: ResNet50Backbone
    let hyperFeature: Sequential
    /// fc{1…4}w_conv (3×3 convolutions producing the target weights) and fc{1…5}b_fc / fc5w_fc (from the pooled feature).
    let weightConvs: [Conv], biasFCs: [Linear], lastWeightFC: Linear

    public init(_ w: WeightSource) throws {
        let root = WeightPath()
        backbone = try ResNet50Backbone(w, root("res"), targetInput: Self.targetWidths[0], ldaChannels: Self.ldaChannels)
        let relu: (WeightPath) throws -> any Module = { _ in ReLU() }
        hyperFeature = try Sequential(root("conv1"), [
            { try Conv(w, $0, in: 2048, out: 1024, kernel: [1, 1]) }, relu,
            { try Conv(w, $0, in: 1024, out: 512, kernel: [1, 1]) }, relu,
            { try Conv(w, $0, in: 512, out: Self.hyperChannels, kernel: [1, 1]) }, relu,
        ])
        let widths = Self.targetWidths, cells = Self.featureSize * Self.featureSize
        weightConvs = try (1...4).map { k in
            // Enough channels that channels × 7 × 7 = out × in of target layer k.
            try Conv(w, root("fc\(k)w_conv"), in: Self.hyperChannels, out: widths[k] * widths[k - 1] / cells, kernel: [3, 3], padding: [1, 1])
        }
        biasFCs = try (1...5).map { k in try Linear(w, root("fc\(k)b_fc"), in: Self.hyperChannels, out: k == 5 ? 1 : widths[k]) }
        lastWeightFC = try Linear(w, root("fc5w_fc"), in: Self.hyperChannels, out: widths[4])
    }

    public static func load(_ archive: any TensorArchive, device: Device = .cpu) throws -> (HyperIQA, StrictLoader.Report) {
        let loader = StrictLoader(archive)
        let model = try HyperIQA(WeightSource(loader, device: device))
        return (model, try loader.finish(ignoring: [".num_batches_tracked"]))
    }

    /// Everything the forward pass computes that the reference records.
    public struct Outputs {
        public let scores: Tensor            // (B)
        public let targetInput: Tensor       // (B, 224)
        public let hyperFeature: Tensor      // (B, 112, 7, 7)
        public let layer4Mean: Tensor        // (B, 2048)
        public let targetWeights: [Tensor]   // (B, out, in) per target layer
        public let targetBiases: [Tensor]    // (B, out)
        public let hidden: [Tensor]          // (B, out) sigmoid outputs of target layers 1…4
    }

    /// (B, 3, 224, 224) ImageNet-normalised RGB → quality scores (B).
    public func callAsFunction(_ images: Tensor) throws -> Tensor { try forward(images).scores }

    public func forward(_ images: Tensor) throws -> Outputs {
        let b = try images.shape[0]
        let (targetIn, layer4) = try backbone(images)
        let feature = try hyperFeature(layer4)
        let pooled = try feature.mean([2, 3])
        let widths = Self.targetWidths
        var weights = try weightConvs.enumerated().map { k, conv in try conv(feature).reshaped([b, widths[k + 1], widths[k]]) }
        weights.append(try lastWeightFC(pooled).reshaped([b, 1, widths[4]]))
        let biases = try biasFCs.map { try $0(pooled) }
        // The target network: per image q ← σ(W q + b), the last layer without the sigmoid.
        var q = try targetIn.reshaped([b, widths[0], 1]), hidden: [Tensor] = []
        for k in 0..<5 {
            let out = k == 4 ? 1 : widths[k + 1]
            let z = try weights[k].matmul(q) + biases[k].reshaped([b, out, 1])
            q = k == 4 ? z : try z.activation(.sigmoid)
            if k < 4 { hidden.append(try q.reshaped([b, out])) }
        }
        return Outputs(scores: try q.reshaped([b]), targetInput: targetIn, hyperFeature: feature, layer4Mean: try layer4.mean([2, 3]),
                       targetWeights: weights, targetBiases: biases, hidden: hidden)
    }

    /// ImageNet statistics of the reference's `transforms.Normalize`.
    public static let mean: [Float] = [0.485, 0.456, 0.406], std: [Float] = [0.229, 0.224, 0.225]

    /// The reference's input for one RGB frame (HWC uint8, at least 224×224): the centre 224×224
    /// (`CenterCrop(224)` without resizing), `u/255`, then `(x − mean)/std`, CHW float32.
    public static func input(rgb: UnsafeBufferPointer<UInt8>, width: Int, height: Int) -> [Float] {
        precondition(width >= 224 && height >= 224 && rgb.count >= width * height * 3, "hyperIQA needs frames of at least 224×224")
        // torchvision's centre crop: top = round((H − 224)/2), left likewise (Python rounds half to even).
        let top = Int(((Double(height) - 224) / 2).rounded(.toNearestOrEven)), left = Int(((Double(width) - 224) / 2).rounded(.toNearestOrEven))
        var out = [Float](repeating: 0, count: 3 * 224 * 224)
        for c in 0..<3 {
            for y in 0..<224 {
                for x in 0..<224 {
                    let u = Float(rgb[((top + y) * width + left + x) * 3 + c]) / 255
                    out[(c * 224 + y) * 224 + x] = (u - mean[c]) / std[c]
                }
            }
        }
        return out
    }
}

/// torchvision's ResNet-50 (Bottleneck [3, 4, 6, 3], stride on the 3×3) as hyperIQA's `ResNetBackbone`:
/// after layers 1–3 a 1×1 convolution and 7×7 average pooling, after layer 4 the pooling alone, each
/// flattened into a Linear; the four results concatenated form the target network's input.
struct ResNet50Backbone: Sendable {
    let stem: Sequential
    let layers: [Sequential]
    let ldaConvs: [Conv], ldaFCs: [Linear]

    init(_ w: WeightSource, _ path: WeightPath, targetInput: Int, ldaChannels: Int) throws {
        let conv1 = try Conv(w, path("conv1"), in: 3, out: 64, kernel: [7, 7], stride: [2, 2], padding: [3, 3], bias: false)
        let bn1 = try BatchNorm(w, path("bn1"), features: 64)
        stem = Sequential(layers: [conv1, bn1, ReLU(), MaxPool(kernel: [3, 3], stride: [2, 2], padding: [1, 1])])
        var channels = 64
        var layers: [Sequential] = []
        for (i, (blocks, width)) in zip([3, 4, 6, 3], [64, 128, 256, 512]).enumerated() {
            let stride = i == 0 ? 1 : 2
            layers.append(try Sequential(path("layer\(i + 1)"), (0..<blocks).map { j in
                let input = j == 0 ? channels : width * 4
                return { try Bottleneck(w, $0, in: input, width: width, stride: j == 0 ? stride : 1) }
            }))
            channels = width * 4
        }
        self.layers = layers
        let ldaOut = [ldaChannels, ldaChannels * 2, ldaChannels * 4]
        ldaConvs = try (0..<3).map { i in try Conv(w, path("lda\(i + 1)_pool")[0], in: 256 << i, out: ldaOut[i], kernel: [1, 1], bias: false) }
        // 224 input → layer1 56×56, layer2 28×28, layer3 14×14: 8×8, 4×4, 2×2 cells after 7×7 pooling.
        ldaFCs = try (0..<3).map { i in try Linear(w, path("lda\(i + 1)_fc"), in: ldaOut[i] * (64 >> (2 * i)), out: ldaChannels) }
            + [try Linear(w, path("lda4_fc"), in: 2048, out: targetInput - 3 * ldaChannels)]
    }

    /// (B, 3, 224, 224) → (target input (B, 224), layer4 output (B, 2048, 7, 7)).
    func callAsFunction(_ x: Tensor) throws -> (Tensor, Tensor) {
        let b = try x.shape[0]
        let pool = AvgPool(kernel: [7, 7])
        var h = try stem(x), parts: [Tensor] = []
        for (i, layer) in layers.enumerated() {
            h = try layer(h)
            let local = i < 3 ? try ldaConvs[i](h) : h
            parts.append(try ldaFCs[i](pool(local).reshaped([b, -1])))
        }
        return (try Tensor.cat(parts, dim: 1), h)
    }
}

/// torchvision's `Bottleneck`: 1×1 → 3×3 (stride) → 1×1 (×4), BatchNorm after each, shortcut through
/// `downsample` (1×1 conv + BN) when the shape changes.
struct Bottleneck: Module {
    let body: [any Module]
    let downsample: Sequential?

    init(_ w: WeightSource, _ path: WeightPath, in inChannels: Int, width: Int, stride: Int) throws {
        body = [
            try Conv(w, path("conv1"), in: inChannels, out: width, kernel: [1, 1], bias: false), try BatchNorm(w, path("bn1"), features: width), ReLU(),
            try Conv(w, path("conv2"), in: width, out: width, kernel: [3, 3], stride: [stride, stride], padding: [1, 1], bias: false),
            try BatchNorm(w, path("bn2"), features: width), ReLU(),
            try Conv(w, path("conv3"), in: width, out: width * 4, kernel: [1, 1], bias: false), try BatchNorm(w, path("bn3"), features: width * 4),
        ]
        downsample = stride == 1 && inChannels == width * 4 ? nil : try Sequential(path("downsample"), [
            { try Conv(w, $0, in: inChannels, out: width * 4, kernel: [1, 1], stride: [stride, stride], bias: false) },
            { try BatchNorm(w, $0, features: width * 4) },
        ])
    }

    func callAsFunction(_ x: Tensor) throws -> Tensor {
        let h = try body.reduce(x) { try $1($0) }
        return try (h + (downsample.map { try $0(x) } ?? x)).relu()
    }
}
