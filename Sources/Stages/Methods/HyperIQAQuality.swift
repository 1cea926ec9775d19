import Foundation
import Inference
import PipelineCore

/// Quality method `hyperiqa`: LatentSync's visual-quality filter (`eval/hyper_iqa.py`): hyperIQA on the
/// centre 224×224 of each sampled frame (no resizing for 256 clips, as upstream; 512 clips are resized
/// to 256 first so the model sees the same face framing rather than the centre quarter), ImageNet
/// normalisation, one batch per clip. KonIQ scale, higher is better.
struct HyperIQAQuality {
    /// Frames of concurrent items are scored together, up to this many per forward (32 clips).
    static let maxBatch = 96
    let batcher: RequestBatcher
    let weightsFingerprint: String

    init(weights: String, device: String) throws {
        let device = try ModelStore.device(device)
        let model = try ModelStore.model("hyperiqa", weights: weights, device: device) { try HyperIQA.load($0, device: device).0 }
        batcher = ModelStore.batcher("hyperiqa|\(weights)", device: device, rowSize: 3 * 224 * 224, maxRows: Self.maxBatch) { input, rows in
            try TorchBackend.shared().inferenceMode { try model(Tensor(input, shape: [rows, 3, 224, 224], device: device)).floats() }
        }
        weightsFingerprint = ModelStore.fingerprint(ofWeights: weights)
    }

    func scores(of images: [RGBImage]) throws -> [Double] {
        var input: [Float] = []
        for image in images {
            let frame = image.width >= 512 && image.width == image.height ? try image.resized(width: 256, height: 256, interpolation: .area) : image
            input += frame.pixels.withUnsafeBufferPointer { HyperIQA.input(rgb: $0, width: frame.width, height: frame.height) }
        }
        return try batcher.run(input, rows: images.count).map(Double.init)
    }
}
