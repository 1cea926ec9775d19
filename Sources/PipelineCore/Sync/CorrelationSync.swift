import Foundation

/// Weight-free sync measurement: how the mouth opens against how loud the speech is.
///
/// - Mouth opening per frame: mean of the three inner-lip distances (iBUG points 61–67, 62–66,
///   63–65) divided by the outer eye-corner distance (36–45), so head size and distance cancel.
/// - Speech envelope per frame: log energy in 300–3000 Hz of a 1024-sample Hann window centred on
///   the frame (the band of voiced speech, where mouth opening and loudness go together).
/// - Both lose their slow trend (minus a 1 s moving average) so head turns and level changes do
///   not dominate, then the normalised cross-correlation (Pearson r) is taken at every offset
///   −search…+search: r(k) pairs mouth frame t with audio frame t − k, so a positive best k means
///   the audio leads (SyncNet v2's convention).
/// - Offset = the k of the highest r; confidence = the peak's prominence over its best rival:
///   r(best) − the highest r more than 2 frames away. Speech that drives the mouth gives one clear
///   peak (0.23–0.40 on the synthetic talking clips of SyncTests); unrelated speech gives several
///   similar bumps (0.01–0.16). A median-based prominence separated the two less well (0.59–0.89
///   against 0.17–0.33, with the curve's overall level leaking into it).
public struct CorrelationSync: SyncMethod {
    public let search: Int
    public var name: String { "correlation" }
    public var fingerprint: String { Fingerprint.of("correlation-v1", String(search)) }

    public static let samplesPerFrame = 640
    static let window = 1024
    static let band = 300.0...3000.0
    /// Offsets within this many frames of the peak belong to it (the speech envelope's own width).
    static let peakHalfWidth = 2

    public init(search: Int = 15) { self.search = search }

    public func measure(_ clip: SyncClip) throws -> SyncMeasurement { try measure(landmarks: clip.landmarks, audio: clip.audio) }

    public func measure(landmarks: [[Point2]], audio: [Float]) throws -> SyncMeasurement {
        let frames = landmarks.count
        let needed = 4 * search + 1
        guard frames >= needed else { throw SyncMethodError.tooShort(frames: frames, needed: needed) }
        guard audio.count == frames * Self.samplesPerFrame else {
            throw SyncMethodError.audioLength(samples: audio.count, expected: frames * Self.samplesPerFrame)
        }
        let mouth = Self.detrended(landmarks.map(Self.mouthOpening))
        let speech = Self.detrended(try Self.speechEnvelope(audio, frames: frames))
        var scores: [Double] = []
        for k in -search...search {
            // Pairs (t, t − k) with both inside the clip.
            let lo = max(0, k), hi = min(frames, frames + k)
            scores.append(Self.pearson(mouth[lo..<hi], speech[(lo - k)..<(hi - k)]))
        }
        let best = scores.indices.max { scores[$0] < scores[$1] }!
        let rival = scores.indices.filter { abs($0 - best) > Self.peakHalfWidth }.map { scores[$0] }.max() ?? 0
        return SyncMeasurement(offset: best - search, confidence: scores[best] - rival, scores: scores)
    }

    /// Inner-lip opening over outer eye-corner distance (68-point iBUG layout).
    public static func mouthOpening(_ p: [Point2]) -> Double {
        func d(_ a: Int, _ b: Int) -> Double { hypot(p[a].x - p[b].x, p[a].y - p[b].y) }
        return (d(61, 67) + d(62, 66) + d(63, 65)) / 3 / max(1e-6, d(36, 45))
    }

    /// Log speech-band energy per 25 fps frame of 16 kHz audio.
    public static func speechEnvelope(_ audio: [Float], frames: Int) throws -> [Double] {
        let fft = try RealFFT(length: window)
        let hann = (0..<window).map { 0.5 - 0.5 * cos(2 * Double.pi * Double($0) / Double(window)) }
        let binWidth = 16_000.0 / Double(window)
        let bins = Int((band.lowerBound / binWidth).rounded(.up))...Int((band.upperBound / binWidth).rounded(.down))
        var frame = [Double](repeating: 0, count: window)
        var power = [Double](repeating: 0, count: window / 2 + 1)
        return (0..<frames).map { t in
            let start = t * samplesPerFrame + samplesPerFrame / 2 - window / 2
            for i in 0..<window {
                let s = start + i
                frame[i] = s >= 0 && s < audio.count ? Double(audio[s]) * hann[i] : 0
            }
            frame.withUnsafeBufferPointer { f in power.withUnsafeMutableBufferPointer { fft.powerSpectrum(f, into: $0) } }
            return log(bins.reduce(1e-10) { $0 + power[$1] })
        }
    }

    /// Whether two stretches of 640-samples-per-frame audio carry the same speech, up to a shift of
    /// `search` frames: their speech envelopes correlate above `threshold` at some lag. Used to keep
    /// the same recording (a duplicate upload, a dubbed copy) out of `calibrate sync`'s negative controls.
    public static func sameSpeech(_ a: [Float], _ b: [Float], search: Int = 15, threshold: Double = 0.8) throws -> Bool {
        let frames = min(a.count, b.count) / samplesPerFrame
        guard frames > 2 * search + 2 else { return false }
        let x = detrended(try speechEnvelope(Array(a.prefix(frames * samplesPerFrame)), frames: frames))
        let y = detrended(try speechEnvelope(Array(b.prefix(frames * samplesPerFrame)), frames: frames))
        for k in -search...search {
            let lo = max(0, k), hi = min(frames, frames + k)
            if pearson(x[lo..<hi], y[(lo - k)..<(hi - k)]) > threshold { return true }
        }
        return false
    }

    /// The signal minus its centred 25-frame (1 s) moving average.
    static func detrended(_ x: [Double]) -> [Double] {
        let half = 12
        var prefix = [0.0]
        for v in x { prefix.append(prefix.last! + v) }
        return x.indices.map { i in
            let lo = max(0, i - half), hi = min(x.count, i + half + 1)
            return x[i] - (prefix[hi] - prefix[lo]) / Double(hi - lo)
        }
    }

    static func pearson(_ a: ArraySlice<Double>, _ b: ArraySlice<Double>) -> Double {
        let n = Double(a.count)
        let ma = a.reduce(0, +) / n, mb = b.reduce(0, +) / n
        var sab = 0.0, saa = 0.0, sbb = 0.0
        for (x, y) in zip(a, b) { sab += (x - ma) * (y - mb); saa += (x - ma) * (x - ma); sbb += (y - mb) * (y - mb) }
        return saa > 0 && sbb > 0 ? sab / (saa * sbb).squareRoot() : 0
    }
}
