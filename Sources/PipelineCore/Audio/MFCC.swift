import Foundation

/// The MFCC features SyncNet v2 was trained on: `python_speech_features.mfcc` with its defaults
/// (16 kHz, 25 ms frames every 10 ms, rectangular window, 512-point FFT, 26 mel filters over
/// 0–8000 Hz, 13 cepstra, lifter 22, coefficient 0 replaced by the log frame energy). Float64 as the
/// reference computes it; `golden/mfcc` holds the expected values.
public struct MFCC: Sendable {
    public static let sampleRate = 16_000
    public static let frameLength = 400
    public static let frameStep = 160
    public static let fftLength = 512
    public static let filters = 26
    public static let cepstra = 13
    public static let lifter = 22.0
    public static let preemphasis = 0.97

    /// [filters][fftLength/2 + 1] triangular filters on FFT bins (python_speech_features.get_filterbanks).
    public let filterbank: [[Double]]
    private let dct: [[Double]]

    public init() {
        func mel(_ hz: Double) -> Double { 2595 * log10(1 + hz / 700) }
        func hz(_ mel: Double) -> Double { 700 * (pow(10, mel / 2595) - 1) }
        let bins = Self.fftLength / 2 + 1
        let low = mel(0), high = mel(Double(Self.sampleRate) / 2)
        let points = (0..<(Self.filters + 2)).map { low + (high - low) * Double($0) / Double(Self.filters + 1) }
        // numpy.linspace computes start + i·step; the bin is floor((nfft + 1)·f / rate).
        let bin = points.map { Int((Double(Self.fftLength + 1) * hz($0) / Double(Self.sampleRate)).rounded(.down)) }
        var bank = [[Double]](repeating: [Double](repeating: 0, count: bins), count: Self.filters)
        for j in 0..<Self.filters {
            for i in bin[j]..<max(bin[j], bin[j + 1]) { bank[j][i] = Double(i - bin[j]) / Double(bin[j + 1] - bin[j]) }
            for i in bin[j + 1]..<max(bin[j + 1], bin[j + 2]) { bank[j][i] = Double(bin[j + 2] - i) / Double(bin[j + 2] - bin[j + 1]) }
        }
        filterbank = bank
        // Orthonormal DCT-II rows for the kept cepstra, with the lifter folded in.
        let n = Double(Self.filters)
        dct = (0..<Self.cepstra).map { k in
            let scale = (k == 0 ? (1 / n).squareRoot() : (2 / n).squareRoot()) * (1 + Self.lifter / 2 * sin(Double.pi * Double(k) / Self.lifter))
            return (0..<Self.filters).map { j in scale * cos(Double.pi * Double(k) * (2 * Double(j) + 1) / (2 * n)) }
        }
    }

    /// Frames × 13 coefficients of 16 kHz mono samples, given as the raw int16 values SyncNet v2 uses
    /// (a float reader's samples × 32768).
    public func features(_ samples: [Double]) throws -> [[Double]] {
        let n = samples.count
        let frames = n <= Self.frameLength ? 1 : 1 + Int((Double(n - Self.frameLength) / Double(Self.frameStep)).rounded(.up))
        var signal = [Double](repeating: 0, count: (frames - 1) * Self.frameStep + Self.frameLength)
        if n > 0 {
            signal[0] = samples[0]
            for i in 1..<n { signal[i] = samples[i] - Self.preemphasis * samples[i - 1] }
        }
        let fft = try RealFFT(length: Self.fftLength)
        let bins = Self.fftLength / 2 + 1
        var power = [Double](repeating: 0, count: bins)
        var out: [[Double]] = []
        out.reserveCapacity(frames)
        let eps = Double.ulpOfOne
        signal.withUnsafeBufferPointer { s in
            for f in 0..<frames {
                let frame = UnsafeBufferPointer(rebasing: s[(f * Self.frameStep)..<(f * Self.frameStep + Self.frameLength)])
                power.withUnsafeMutableBufferPointer { fft.powerSpectrum(frame, into: $0) }
                var energy = 0.0
                for k in 0..<bins { power[k] /= Double(Self.fftLength); energy += power[k] }
                let logEnergies = filterbank.map { filter -> Double in
                    var e = 0.0
                    for k in 0..<bins { e += power[k] * filter[k] }
                    return log(e == 0 ? eps : e)
                }
                var row = dct.map { weights in zip(weights, logEnergies).reduce(0) { $0 + $1.0 * $1.1 } }
                row[0] = log(energy == 0 ? eps : energy)
                out.append(row)
            }
        }
        return out
    }
}
