import CFFmpeg
import Foundation

/// How loud decoded audio is, frame by frame, for stage 1's silence check: the share of samples in
/// frames whose loudest channel stays below a level (RMS, dBFS), and the peak.
///
/// Why per decoded frame (about 20–64 ms): speech pauses are longer than a frame, so a track of
/// real speech has most frames well above −60 dBFS, while digital silence or a muted microphone has
/// none. It reads the decoder's own frames in any sample format, so it costs no resampling.
public struct AudioLevelMeter: Sendable {
    /// Samples (per channel) measured, and those in frames below the threshold.
    public private(set) var samples = 0
    public private(set) var silentSamples = 0
    /// Largest |sample| seen, full scale = 1.
    public private(set) var peak = 0.0
    let threshold: Double

    /// - Parameter silenceDBFS: a frame whose loudest channel's RMS is below this counts as silent.
    public init(silenceDBFS: Double) { threshold = pow(10, silenceDBFS / 20) }

    public var silentShare: Double { samples > 0 ? Double(silentSamples) / Double(samples) : 0 }
    public var peakDBFS: Double { peak > 0 ? 20 * log10(peak) : -.infinity }

    mutating func add(_ frame: UnsafePointer<AVFrame>) {
        let n = Int(frame.pointee.nb_samples), channels = Int(frame.pointee.ch_layout.nb_channels)
        guard n > 0, channels > 0, let planes = frame.pointee.extended_data else { return }
        let format = AVSampleFormat(rawValue: frame.pointee.format)
        let planar = av_sample_fmt_is_planar(format) != 0
        // One reader per format, chosen once per frame: sample k of a plane as a value in [-1, 1].
        let read: (UnsafeRawPointer, Int) -> Double
        switch av_get_packed_sample_fmt(format) {
        case AV_SAMPLE_FMT_U8: read = { (Double($0.load(fromByteOffset: $1, as: UInt8.self)) - 128) / 128 }
        case AV_SAMPLE_FMT_S16: read = { Double($0.load(fromByteOffset: $1 * 2, as: Int16.self)) / 32_768 }
        case AV_SAMPLE_FMT_S32: read = { Double($0.load(fromByteOffset: $1 * 4, as: Int32.self)) / 2_147_483_648 }
        case AV_SAMPLE_FMT_S64: read = { Double($0.load(fromByteOffset: $1 * 8, as: Int64.self)) / 9_223_372_036_854_775_808 }
        case AV_SAMPLE_FMT_FLT: read = { Double($0.load(fromByteOffset: $1 * 4, as: Float.self)) }
        case AV_SAMPLE_FMT_DBL: read = { $0.load(fromByteOffset: $1 * 8, as: Double.self) }
        default: return
        }
        var loudest = 0.0
        for c in 0..<channels {
            guard let plane = planes[planar ? c : 0] else { continue }
            let base = UnsafeRawPointer(plane)
            var sum = 0.0
            for i in 0..<n {
                let v = read(base, planar ? i : i * channels + c)
                sum += v * v
                peak = max(peak, abs(v))
            }
            loudest = max(loudest, sum / Double(n))
        }
        samples += n
        if loudest.squareRoot() < threshold { silentSamples += n }
    }
}
