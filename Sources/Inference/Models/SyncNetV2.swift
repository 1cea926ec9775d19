#if canImport(FoundationEssentials)
import FoundationEssentials  // Data, URL, JSON coding: keeps binaries that link Inference small (no ICU)
#else
import Foundation
#endif

/// SyncNet v2 — joonson/syncnet_python `SyncNetModel.py` (`S`), as LatentSync's sync filter uses it
/// (`eval/syncnet/syncnet.py`). Audio: 13×20 MFCC window → 1024-d; lips: 5 frames of 224×224
/// (values 0…255, no normalisation) → 1024-d. Embeddings are not normalised.
public struct SyncNetV2: Sendable {
    public let audioCNN: Sequential, audioFC: Sequential, lipCNN: Sequential, lipFC: Sequential

    public init(_ w: WeightSource) throws {
        let root = WeightPath()
        func conv(_ i: Int, _ o: Int, _ k: [Int], stride: [Int]? = nil, padding: [Int]? = nil) -> (WeightPath) throws -> any Module {
            { try Conv(w, $0, in: i, out: o, kernel: k, stride: stride, padding: padding) }
        }
        func bn(_ n: Int) -> (WeightPath) throws -> any Module { { try BatchNorm(w, $0, features: n) } }
        let relu: (WeightPath) throws -> any Module = { _ in ReLU() }
        func pool(_ k: [Int], _ s: [Int]? = nil, _ p: [Int]? = nil) -> (WeightPath) throws -> any Module { { _ in MaxPool(kernel: k, stride: s, padding: p) } }
        func fc(_ path: WeightPath) throws -> Sequential {
            try Sequential(path, [{ try Linear(w, $0, in: 512, out: 512) }, bn(512), relu, { try Linear(w, $0, in: 512, out: 1024) }])
        }
        audioCNN = try Sequential(root("netcnnaud"), [
            conv(1, 64, [3, 3], padding: [1, 1]), bn(64), relu, pool([1, 1], [1, 1]),
            conv(64, 192, [3, 3], padding: [1, 1]), bn(192), relu, pool([3, 3], [1, 2]),
            conv(192, 384, [3, 3], padding: [1, 1]), bn(384), relu,
            conv(384, 256, [3, 3], padding: [1, 1]), bn(256), relu,
            conv(256, 256, [3, 3], padding: [1, 1]), bn(256), relu, pool([3, 3], [2, 2]),
            conv(256, 512, [5, 4]), bn(512), relu,
        ])
        audioFC = try fc(root("netfcaud"))
        lipCNN = try Sequential(root("netcnnlip"), [
            conv(3, 96, [5, 7, 7], stride: [1, 2, 2]), bn(96), relu, pool([1, 3, 3], [1, 2, 2]),
            conv(96, 256, [1, 5, 5], stride: [1, 2, 2], padding: [0, 1, 1]), bn(256), relu, pool([1, 3, 3], [1, 2, 2], [0, 1, 1]),
            conv(256, 256, [1, 3, 3], padding: [0, 1, 1]), bn(256), relu,
            conv(256, 256, [1, 3, 3], padding: [0, 1, 1]), bn(256), relu,
            conv(256, 256, [1, 3, 3], padding: [0, 1, 1]), bn(256), relu, pool([1, 3, 3], [1, 2, 2]),
            conv(256, 512, [1, 6, 6]), bn(512), relu,
        ])
        lipFC = try fc(root("netfclip"))
    }

    /// Loads a checkpoint strictly (every key used, BatchNorm's `num_batches_tracked` aside).
    public static func load(_ archive: any TensorArchive, device: Device = .cpu) throws -> (SyncNetV2, StrictLoader.Report) {
        let loader = StrictLoader(archive)
        let model = try SyncNetV2(WeightSource(loader, device: device))
        return (model, try loader.finish(ignoring: [".num_batches_tracked"]))
    }

    /// (N, 1, 13, 20) MFCC windows → (N, 1024).
    public func forwardAudio(_ x: Tensor) throws -> Tensor {
        let n = try x.shape[0]
        return try audioFC(audioCNN(x).reshaped([n, -1]))
    }

    /// (N, 3, 5, 224, 224) frames (0…255) → (N, 1024).
    public func forwardLip(_ x: Tensor) throws -> Tensor {
        let n = try x.shape[0]
        return try lipFC(lipCNN(x).reshaped([n, -1]))
    }
}
