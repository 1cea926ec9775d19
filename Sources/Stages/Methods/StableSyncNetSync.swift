import Foundation
import Inference
import PipelineCore

/// Sync method `stable_syncnet`: LatentSync's StableSyncNet on the lower half of the aligned frames
/// (16-frame windows; 512 clips are resized to 256 first, the resolution the model was trained at)
/// and the 80×52 mel window of the same 16 frames. SyncNet v2's offset search with the cosine
/// distance 1 − cos: for visual windows starting every `stride` frames, the distance to the audio
/// window `offset` frames earlier, averaged per offset over the windows that have audio at every
/// offset; offset = argmin, confidence = median − minimum (0…1), `scores` = mean distances.
struct StableSyncNetSync: SyncMethod {
    let visual: RequestBatcher, audio: RequestBatcher
    let search: Int, stride: Int
    /// The face size the model was trained at (its checkpoint's configuration; 256 for the released one).
    let resolution: Int
    let weightsFingerprint: String
    /// Windows per submission; concurrent items' submissions merge up to the batchers' maxima.
    static let windowFrames = 16, chunk = 16

    var name: String { "stable_syncnet" }
    var fingerprint: String { Fingerprint.of("stable_syncnet-v1", String(search), String(stride), weightsFingerprint) }

    init(weights: String, search: Int, stride: Int, device: String) throws {
        let device = try ModelStore.device(device)
        let model = try ModelStore.model("stable_syncnet", weights: weights, device: device) { archive in
            try StableSyncNet.load(archive, config: StableSyncNet.Config.of(archive), device: device).0
        }
        let frames = Self.windowFrames, r = model.config.inputResolution
        resolution = r
        visual = ModelStore.batcher("stable_syncnet visual|\(weights)", device: device, rowSize: frames * 3 * (r / 2) * r, maxRows: 4 * Self.chunk) { input, rows in
            try TorchBackend.shared().inferenceMode { try model.visualEmbedding(Tensor(input, shape: [rows, frames * 3, r / 2, r], device: device)).floats() }
        }
        audio = ModelStore.batcher("stable_syncnet audio|\(weights)", device: device, rowSize: 80 * MelSpectrogram.windowColumns, maxRows: 16 * Self.chunk) { input, rows in
            try TorchBackend.shared().inferenceMode {
                try model.audioEmbedding(Tensor(input, shape: [rows, 1, 80, MelSpectrogram.windowColumns], device: device)).floats()
            }
        }
        self.search = search; self.stride = stride
        weightsFingerprint = ModelStore.fingerprint(ofWeights: weights)
    }

    func measure(_ clip: SyncClip) throws -> SyncMeasurement {
        let n = clip.frameCount, w = Self.windowFrames
        // Visual windows s with audio windows s − offset for every offset: s ∈ [search, n − w − search].
        let needed = w + 2 * search + 1
        guard n >= needed else { throw SyncMethodError.tooShort(frames: n, needed: needed) }
        guard clip.audio.count == n * 640 else { throw SyncMethodError.audioLength(samples: clip.audio.count, expected: n * 640) }
        let mel = try MelSpectrogram().spectrogram(clip.audio)
        // Every audio window the clip has (the mel runs out a little before the last frames), computed once.
        let audioWindows = (0...(n - w)).compactMap { s in MelSpectrogram.window(mel, startFrame: s).map { (start: s, mel: $0) } }
        let lastAudio = audioWindows.last?.start ?? -1
        let visualStarts = Array(Swift.stride(from: search, through: min(n - w, lastAudio) - search, by: stride))
        guard !visualStarts.isEmpty else { throw SyncMethodError.tooShort(frames: n, needed: needed) }

        let images = try ClipFrames.read(clip.video, indices: Array(0..<n))
        let halves = try (0..<n).map { try Self.lowerHalf(images[$0]!, resolution: resolution) }
        var visualRows: [[Float]] = []
        for chunk in visualStarts.chunked(Self.chunk) {
            var input = [Float](); input.reserveCapacity(chunk.count * w * 3 * 128 * 256)
            for s in chunk { for t in s..<(s + w) { input += halves[t] } }
            let out = try visual.run(input, rows: chunk.count)
            visualRows += out.rows(width: out.count / chunk.count)
        }
        var audioRows: [Int: [Float]] = [:]
        for chunk in audioWindows.chunked(4 * Self.chunk) {
            let input = chunk.flatMap { $0.mel.flatMap { $0.map(Float.init) } }
            let out = try audio.run(input, rows: chunk.count)
            for (window, row) in zip(chunk, out.rows(width: out.count / chunk.count)) { audioRows[window.start] = row }
        }
        // Offsets −search…+search; positive: the audio leads, so frame s matches audio window s − offset.
        let offsets = Array(-search...search)
        let mean = offsets.map { offset -> Double in
            let distances = zip(visualStarts, visualRows).map { s, v in 1 - Double(zip(v, audioRows[s - offset]!).reduce(Float(0)) { $0 + $1.0 * $1.1 }) }
            return distances.reduce(0, +) / Double(distances.count)
        }
        let best = mean.indices.min { mean[$0] < mean[$1] }!
        let sorted = mean.sorted()
        return SyncMeasurement(offset: offsets[best], confidence: sorted[sorted.count / 2] - mean[best], scores: mean)
    }

    /// The lower half of the frame resized to `resolution`² as the model's input: channel-major RGB, `(u/255 − 0.5)/0.5`.
    static func lowerHalf(_ image: RGBImage, resolution r: Int = 256) throws -> [Float] {
        let face = image.width == r && image.height == r ? image : try image.resized(width: r, height: r, interpolation: .area)
        let h = r / 2
        var out = [Float](repeating: 0, count: 3 * h * r)
        for y in 0..<h {
            for x in 0..<r {
                let p = ((h + y) * r + x) * 3
                for c in 0..<3 { out[(c * h + y) * r + x] = (Float(face.pixels[p + c]) / 255 - 0.5) / 0.5 }
            }
        }
        return out
    }

}
