#if canImport(FoundationEssentials)
import FoundationEssentials  // Data, URL, JSON coding: keeps binaries that link Inference small (no ICU)
#else
import Foundation
#endif

/// SyncNet v2's offset search — `SyncNetInstance.evaluate` of syncnet_python (LatentSync's
/// `SyncNetEval.evaluate`): lip windows of 5 frames against audio windows of 20 MFCC columns
/// (4 per video frame), distances at offsets −vshift…+vshift, offset = vshift − argmin of the mean
/// distance, confidence = median − min. Positive offset: the audio leads.
public struct SyncNetEvaluation: Sendable, Equatable {
    public var offset: Int
    public var minDistance: Float
    public var confidence: Float
    /// Column k: offset vshift − k.
    public var meanDistances: [Float]
    /// Row i (lip window), column k.
    public var distances: [[Float]]
}

extension SyncNetV2 {
    /// - Parameters:
    ///   - frames: `[3][T][224][224]` float values 0…255 (channel-major, as the reference's tensor).
    ///   - mfcc: `[13][M]` MFCC columns (python_speech_features, 100 per second).
    public func evaluate(frames: [Float], frameCount: Int, mfcc: [Float], mfccColumns: Int, vshift: Int = 15, batch: Int = 20,
                         device: Device = .cpu) throws -> SyncNetEvaluation {
        let windows = try Self.windowCount(frameCount: frameCount, mfccColumns: mfccColumns)
        precondition(frames.count == 3 * frameCount * Self.plane && mfcc.count == 13 * mfccColumns, "frames or MFCC of the wrong size")
        var lipEmbeddings: [[Float]] = [], audioEmbeddings: [[Float]] = []
        for start in stride(from: 0, to: windows, by: batch) {
            let range = start..<min(windows, start + batch)
            let im = try forwardLip(Tensor(Self.lipWindows(frames, frameCount: frameCount, range), shape: [range.count, 3, 5, 224, 224], device: device)).floats()
            let cc = try forwardAudio(Tensor(Self.audioWindows(mfcc, columns: mfccColumns, range), shape: [range.count, 1, 13, 20], device: device)).floats()
            lipEmbeddings += im.rows(width: 1024)
            audioEmbeddings += cc.rows(width: 1024)
        }
        return Self.evaluate(lipEmbeddings: lipEmbeddings, audioEmbeddings: audioEmbeddings, vshift: vshift)
    }

    static let plane = 224 * 224

    /// `min(frames, columns / 4) − 5` windows (upstream's `lastframe`).
    public static func windowCount(frameCount: Int, mfccColumns: Int) throws -> Int {
        let windows = min(frameCount, mfccColumns / 4) - 5
        guard windows > 0 else { throw TorchError.operation("SyncNet v2 evaluation", "needs at least 6 frames and 24 MFCC columns") }
        return windows
    }

    /// The lip inputs of windows `range`: frames v…v+4 per window, `[n][3][5][224][224]`.
    public static func lipWindows(_ frames: [Float], frameCount: Int, _ range: Range<Int>) -> [Float] {
        var lip = [Float](); lip.reserveCapacity(range.count * 3 * 5 * plane)
        for v in range { for c in 0..<3 { for t in v..<(v + 5) { lip += frames[((c * frameCount + t) * plane)..<((c * frameCount + t + 1) * plane)] } } }
        return lip
    }

    /// The audio inputs of windows `range`: MFCC columns 4v…4v+19 per window, `[n][1][13][20]`.
    public static func audioWindows(_ mfcc: [Float], columns: Int, _ range: Range<Int>) -> [Float] {
        var audio = [Float](); audio.reserveCapacity(range.count * 13 * 20)
        for v in range { for r in 0..<13 { audio += mfcc[(r * columns + 4 * v)..<(r * columns + 4 * v + 20)] } }
        return audio
    }

    /// The offset search on per-window embeddings (row v: window v).
    public static func evaluate(lipEmbeddings: [[Float]], audioEmbeddings: [[Float]], vshift: Int) -> SyncNetEvaluation {
        let windows = lipEmbeddings.count
        // Audio windows padded with vshift zero rows on both sides; PyTorch's pairwise_distance adds
        // its eps (1e-6) to the difference vector before the norm.
        let zero = [Float](repeating: 0, count: lipEmbeddings.first?.count ?? 1024)
        let padded = Array(repeating: zero, count: vshift) + audioEmbeddings + Array(repeating: zero, count: vshift)
        let distances = (0..<windows).map { i in
            (0...(2 * vshift)).map { k -> Float in
                var sum: Float = 0
                for (a, b) in zip(lipEmbeddings[i], padded[i + k]) { let d = a - b + 1e-6; sum += d * d }
                return sum.squareRoot()
            }
        }
        let means = (0...(2 * vshift)).map { k in distances.reduce(Float(0)) { $0 + $1[k] } / Float(windows) }
        let minIndex = means.indices.min { means[$0] < means[$1] }!
        let median = means.sorted()[(means.count - 1) / 2]
        return SyncNetEvaluation(offset: vshift - minIndex, minDistance: means[minIndex], confidence: median - means[minIndex],
                                 meanDistances: means, distances: distances)
    }
}
