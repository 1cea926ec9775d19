import Foundation
import Inference
import PipelineCore

/// Sync method `syncnet_v2`: LatentSync's sync filter (`eval/syncnet`, SyncNet v2 of syncnet_python)
/// on the aligned clip. Confidence = median − minimum of the mean distances (upstream's `conf`);
/// `scores` holds the mean distance per offset (lower is better).
///
/// The face box: upstream re-detects faces with S3FD in the clip and crops around the box. Here the
/// box comes from the landmarks stage 5 stored, mapped through its alignment into the aligned
/// frame: the same face stage 5 found, no second detector (S3FD is not available here) and no
/// chance of locking onto another face. The box is the landmarks' bounding box; its half side and
/// centre are median-filtered over 13 frames (upstream's kernel, with edge values repeated where
/// upstream's filter pads zeros), then upstream's crop: rows `cy − s … cy + 1.8 s`, columns
/// `cx − 1.4 s … cx + 1.4 s`, grey 110 outside the frame, bilinear to 224×224, BGR, 0…255.
struct SyncNetV2Sync: SyncMethod {
    /// Windows per submission, and per forward once concurrent items' windows are merged.
    static let chunk = 32, maxBatch = 128
    let lip: RequestBatcher, audio: RequestBatcher
    let search: Int
    let weightsFingerprint: String

    var name: String { "syncnet_v2" }
    var fingerprint: String { Fingerprint.of("syncnet_v2-v1", String(search), weightsFingerprint) }

    init(weights: String, search: Int, device: String) throws {
        let device = try ModelStore.device(device)
        let model = try ModelStore.model("syncnet_v2", weights: weights, device: device) { try SyncNetV2.load($0, device: device).0 }
        lip = ModelStore.batcher("syncnet_v2 lip|\(weights)", device: device, rowSize: 3 * 5 * 224 * 224, maxRows: Self.maxBatch) { input, rows in
            try TorchBackend.shared().inferenceMode { try model.forwardLip(Tensor(input, shape: [rows, 3, 5, 224, 224], device: device)).floats() }
        }
        audio = ModelStore.batcher("syncnet_v2 audio|\(weights)", device: device, rowSize: 13 * 20, maxRows: 4 * Self.maxBatch) { input, rows in
            try TorchBackend.shared().inferenceMode { try model.forwardAudio(Tensor(input, shape: [rows, 1, 13, 20], device: device)).floats() }
        }
        self.search = search
        weightsFingerprint = ModelStore.fingerprint(ofWeights: weights)
    }

    func measure(_ clip: SyncClip) throws -> SyncMeasurement {
        let n = clip.frameCount
        guard n >= 6 + search else { throw SyncMethodError.tooShort(frames: n, needed: 6 + search) }
        guard clip.audio.count == n * 640 else { throw SyncMethodError.audioLength(samples: clip.audio.count, expected: n * 640) }
        let images = try ClipFrames.read(clip.video, indices: Array(0..<n))
        let boxes = Self.smoothedBoxes(clip.alignedLandmarks())
        let side = 224, plane = side * side
        var frames = [Float](repeating: 0, count: 3 * n * plane)
        for t in 0..<n {
            let crop = try Self.crop(images[t]!, box: boxes[t]).resized(width: side, height: side, interpolation: .linear)
            for y in 0..<side {
                for x in 0..<side {
                    let p = (y * side + x) * 3
                    // BGR, as upstream's frames come from OpenCV.
                    for c in 0..<3 { frames[(c * n + t) * plane + y * side + x] = Float(crop.pixels[p + 2 - c]) }
                }
            }
        }
        let coefficients = try MFCC().features(clip.audio.map { Double(max(-32768, min(32767, ($0 * 32768).rounded()))) })
        var mfcc = [Float](repeating: 0, count: 13 * coefficients.count)
        for (column, frame) in coefficients.enumerated() { for r in 0..<13 { mfcc[r * coefficients.count + column] = Float(frame[r]) } }
        let windows = try SyncNetV2.windowCount(frameCount: n, mfccColumns: coefficients.count)
        var lipEmbeddings: [[Float]] = [], audioEmbeddings: [[Float]] = []
        for start in Swift.stride(from: 0, to: windows, by: Self.chunk) {
            let range = start..<min(windows, start + Self.chunk)
            lipEmbeddings += try lip.run(SyncNetV2.lipWindows(frames, frameCount: n, range), rows: range.count).rows(width: 1024)
            audioEmbeddings += try audio.run(SyncNetV2.audioWindows(mfcc, columns: coefficients.count, range), rows: range.count).rows(width: 1024)
        }
        let result = SyncNetV2.evaluate(lipEmbeddings: lipEmbeddings, audioEmbeddings: audioEmbeddings, vshift: search)
        // meanDistances[k] is offset search − k; scores run from −search to +search.
        return SyncMeasurement(offset: result.offset, confidence: Double(result.confidence), scores: result.meanDistances.reversed().map(Double.init))
    }

    struct Box { var cx: Double, cy: Double, half: Double }

    static func smoothedBoxes(_ landmarks: [[Point2]]) -> [Box] {
        let raw = landmarks.map { points -> Box in
            let xs = points.map(\.x), ys = points.map(\.y)
            let (x0, x1, y0, y1) = (xs.min()!, xs.max()!, ys.min()!, ys.max()!)
            return Box(cx: (x0 + x1) / 2, cy: (y0 + y1) / 2, half: max(x1 - x0, y1 - y0) / 2)
        }
        func median(_ values: [Double]) -> [Double] {
            values.indices.map { i in
                let window = (i - 6...i + 6).map { values[min(values.count - 1, max(0, $0))] }.sorted()
                return window[6]
            }
        }
        let cx = median(raw.map(\.cx)), cy = median(raw.map(\.cy)), half = median(raw.map(\.half))
        return raw.indices.map { Box(cx: cx[$0], cy: cy[$0], half: half[$0]) }
    }

    /// Upstream's crop (`crop_video` with crop_scale 0.4) in padded coordinates, truncating as it does.
    static func crop(_ image: RGBImage, box: Box) throws -> RGBImage {
        let bs = box.half, pad = Int(bs * 1.8)
        let my = box.cy + Double(pad), mx = box.cx + Double(pad)
        let top = Int(my - bs), bottom = Int(my + bs * 1.8), left = Int(mx - bs * 1.4), right = Int(mx + bs * 1.4)
        let w = max(1, right - left), h = max(1, bottom - top)
        var out = RGBImage(width: w, height: h, pixels: [UInt8](repeating: 110, count: w * h * 3))
        for y in 0..<h {
            let sy = top + y - pad
            guard sy >= 0, sy < image.height else { continue }
            for x in 0..<w {
                let sx = left + x - pad
                guard sx >= 0, sx < image.width else { continue }
                let s = (sy * image.width + sx) * 3, d = (y * w + x) * 3
                out.pixels[d] = image.pixels[s]; out.pixels[d + 1] = image.pixels[s + 1]; out.pixels[d + 2] = image.pixels[s + 2]
            }
        }
        return out
    }
}
