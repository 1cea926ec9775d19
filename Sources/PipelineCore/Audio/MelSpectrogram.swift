import Foundation

/// LatentSync's 80-band mel spectrogram (Wav2Lip's `audio.py` with `configs/audio.yaml`), the audio
/// input of StableSyncNet and of the sync loss: pre-emphasis 0.97, centred STFT (n_fft 800, hop 200,
/// periodic Hann, 400 zero samples each side), magnitude, Slaney mel filters 55–7600 Hz (librosa's
/// defaults, stored as float32 as librosa returns them), dB − 20, then `clip(8·(S + 100)/100 − 4, ±4)`.
/// Float64 throughout as the reference computes it; `golden/mel` holds the expected values.
public struct MelSpectrogram: Sendable {
    public static let sampleRate = 16_000
    public static let fftLength = 800
    public static let hop = 200
    public static let bands = 80
    public static let minFrequency = 55.0
    public static let maxFrequency = 7600.0
    /// Mel columns per video frame at 25 fps (80 columns per second).
    public static let columnsPerVideoFrame = 3.2
    /// Columns of the window for 16 video frames: ceil(16 / 5 · 16).
    public static let windowColumns = 52

    /// [bands][fftLength/2 + 1], float32 values (librosa.filters.mel(sr=16000, n_fft=800, n_mels=80, fmin=55, fmax=7600)).
    public let basis: [[Double]]
    private let window: [Double]

    public init() {
        basis = Self.slaneyFilters(sampleRate: Self.sampleRate, fftLength: Self.fftLength, bands: Self.bands,
                                   minFrequency: Self.minFrequency, maxFrequency: Self.maxFrequency)
        window = (0..<Self.fftLength).map { 0.5 - 0.5 * cos(2 * Double.pi * Double($0) / Double(Self.fftLength)) }
    }

    /// librosa.filters.mel (Slaney mel scale and area normalisation, its defaults) as librosa returns it:
    /// [bands][fftLength/2 + 1], float32 values. Whisper's `mel_filters.npz` is the same construction.
    public static func slaneyFilters(sampleRate: Int, fftLength: Int, bands: Int, minFrequency: Double, maxFrequency: Double) -> [[Double]] {
        // librosa's Slaney mel scale: linear below 1 kHz (200/3 Hz per mel), logarithmic above.
        let fSp = 200.0 / 3, minLogHz = 1000.0, minLogMel = minLogHz / fSp, logStep = log(6.4) / 27
        func mel(_ hz: Double) -> Double { hz >= minLogHz ? minLogMel + log(hz / minLogHz) / logStep : hz / fSp }
        func hz(_ m: Double) -> Double { m >= minLogMel ? minLogHz * exp(logStep * (m - minLogMel)) : fSp * m }
        let bins = fftLength / 2 + 1
        let fftFrequencies = (0..<bins).map { Double($0) * Double(sampleRate) / 2 / Double(bins - 1) }
        let lo = mel(minFrequency), hi = mel(maxFrequency)
        let count = bands + 2
        let melFrequencies = (0..<count).map { hz(lo + (hi - lo) * Double($0) / Double(count - 1)) }
        return (0..<bands).map { i in
            let lower = melFrequencies[i + 1] - melFrequencies[i], upper = melFrequencies[i + 2] - melFrequencies[i + 1]
            let norm = 2 / (melFrequencies[i + 2] - melFrequencies[i])
            return fftFrequencies.map { f in
                let rising = (f - melFrequencies[i]) / lower, falling = (melFrequencies[i + 2] - f) / upper
                // librosa stores the triangle in float32, then scales it in place (float64 product, float32 result).
                return Double(Float(Double(Float(max(0, min(rising, falling)))) * norm))
            }
        }
    }

    /// `bands` rows × `1 + N / 200` columns of 16 kHz mono float samples (range ±1), normalised to [−4, 4].
    public func spectrogram(_ samples: [Float]) throws -> [[Double]] {
        let n = samples.count
        let pad = Self.fftLength / 2
        var padded = [Double](repeating: 0, count: n + 2 * pad)
        if n > 0 {
            padded[pad] = Double(samples[0])
            for i in 1..<n { padded[pad + i] = Double(samples[i]) - 0.97 * Double(samples[i - 1]) }
        }
        let frames = 1 + n / Self.hop
        let bins = Self.fftLength / 2 + 1
        let fft = try RealFFT(length: Self.fftLength)
        var out = [[Double]](repeating: [Double](repeating: 0, count: frames), count: Self.bands)
        var windowed = [Double](repeating: 0, count: Self.fftLength)
        var magnitude = [Double](repeating: 0, count: bins)
        for t in 0..<frames {
            for i in 0..<Self.fftLength { windowed[i] = padded[t * Self.hop + i] * window[i] }
            windowed.withUnsafeBufferPointer { w in magnitude.withUnsafeMutableBufferPointer { fft.magnitude(w, into: $0) } }
            for b in 0..<Self.bands {
                var e = 0.0
                let filter = basis[b]
                for k in 0..<bins where filter[k] != 0 { e += filter[k] * magnitude[k] }
                let db = 20 * log10(max(1e-5, e)) - 20
                out[b][t] = min(4, max(-4, 8 * (db + 100) / 100 - 4))
            }
        }
        return out
    }

    /// The 80 × 52 window for 16 video frames starting at video frame `start`, or nil when fewer
    /// than 52 columns remain (the reference rejects such a sample).
    public static func window(_ mel: [[Double]], startFrame start: Int) -> [[Double]]? {
        let first = Int(80.0 * Double(start) / 25.0)
        guard let columns = mel.first?.count, first >= 0, first + windowColumns <= columns else { return nil }
        return mel.map { Array($0[first..<(first + windowColumns)]) }
    }
}
