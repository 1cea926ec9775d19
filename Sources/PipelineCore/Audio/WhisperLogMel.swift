import Foundation

/// Whisper's front end as LatentSync calls it (`whisper/audio.py` `log_mel_spectrogram` on the whole
/// file): 200 samples of reflection padding each side, 400-sample periodic-Hann frames every 160
/// samples, |FFT|², the last frame dropped, 80 Slaney mel filters (0–8 kHz), log10 floored at 1e-10,
/// clamped to 8 below the file's maximum, then `(L + 4) / 4`. Float64 internally; `golden/whisper_tiny_encoder`.
public struct WhisperLogMel: Sendable {
    public static let sampleRate = 16_000, fftLength = 400, hop = 160, bands = 80
    /// Mel frames per 30 s encoder window.
    public static let windowFrames = 3000

    /// [80][201] filters (float32 values), as whisper's `mel_filters.npz` `mel_80`.
    public let filters: [[Double]]
    private let window: [Double]

    public init() {
        filters = MelSpectrogram.slaneyFilters(sampleRate: Self.sampleRate, fftLength: Self.fftLength, bands: Self.bands,
                                               minFrequency: 0, maxFrequency: Double(Self.sampleRate) / 2)
        window = (0..<Self.fftLength).map { 0.5 - 0.5 * cos(2 * Double.pi * Double($0) / Double(Self.fftLength)) }
    }

    /// [80][N / 160] normalised log-mel of 16 kHz mono samples (range ±1).
    public func spectrogram(_ samples: [Float]) throws -> [[Float]] {
        let n = samples.count, pad = Self.fftLength / 2
        guard n > pad else { throw AudioFeatureError.tooShort(samples: n, needed: pad + 1) }
        // Reflection: x[200] … x[1] before, x[n−2] … x[n−201] after.
        var padded = [Double](repeating: 0, count: n + 2 * pad)
        for i in 0..<n { padded[pad + i] = Double(samples[i]) }
        for i in 1...pad { padded[pad - i] = Double(samples[i]); padded[pad + n - 1 + i] = Double(samples[n - 1 - i]) }
        let frames = n / Self.hop, bins = Self.fftLength / 2 + 1
        let fft = try RealFFT(length: Self.fftLength)
        var windowed = [Double](repeating: 0, count: Self.fftLength), power = [Double](repeating: 0, count: bins)
        var logMel = [[Double]](repeating: [Double](repeating: 0, count: frames), count: Self.bands)
        var peak = -Double.infinity
        for t in 0..<frames {
            for i in 0..<Self.fftLength { windowed[i] = padded[t * Self.hop + i] * window[i] }
            windowed.withUnsafeBufferPointer { w in power.withUnsafeMutableBufferPointer { fft.powerSpectrum(w, into: $0) } }
            for b in 0..<Self.bands {
                var e = 0.0
                let filter = filters[b]
                for k in 0..<bins where filter[k] != 0 { e += filter[k] * power[k] }
                let l = log10(max(e, 1e-10))
                logMel[b][t] = l
                peak = max(peak, l)
            }
        }
        return logMel.map { row in row.map { Float((max($0, peak - 8) + 4) / 4) } }
    }
}

public enum AudioFeatureError: Error, CustomStringConvertible, Equatable {
    case tooShort(samples: Int, needed: Int)

    public var description: String {
        switch self {
        case let .tooShort(samples, needed): "audio of \(samples) samples is too short for these features (at least \(needed) needed)"
        }
    }
}
