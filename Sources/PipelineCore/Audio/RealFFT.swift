import CFFmpeg

/// A real-input DFT of fixed length over FFmpeg's `av_tx` (libavutil, already a dependency):
/// `N` samples → `N/2 + 1` complex bins, unnormalised, in float64. One instance per thread.
public final class RealFFT {
    public let length: Int
    private var context: OpaquePointer?
    private let transform: av_tx_fn
    private var input: UnsafeMutablePointer<Double>
    private var output: UnsafeMutablePointer<AVComplexDouble>

    public init(length: Int) throws(MediaError) {
        precondition(length >= 2 && length % 2 == 0, "RealFFT length must be even")
        self.length = length
        var scale = 1.0
        var ctx: OpaquePointer?
        var fn: av_tx_fn?
        try ff("av_tx_init(RDFT \(length))", av_tx_init(&ctx, &fn, AV_TX_DOUBLE_RDFT, 0, Int32(length), &scale, 0))
        guard let ctx, let fn else { throw .allocation("AVTXContext") }
        context = ctx
        transform = fn
        // av_tx wants SIMD-aligned buffers. libavutil 57's real transform also reads (and may write)
        // a little past N input samples and N/2 + 1 outputs: both buffers get spare room, zeroed
        // once and never written by us, or those reads return whatever the heap held before (seen
        // as a wrong energy in the quiet last MFCC frame of one run in eight).
        input = UnsafeMutableRawPointer(av_mallocz(length * 8 + 64)!).bindMemory(to: Double.self, capacity: length + 8)
        output = UnsafeMutableRawPointer(av_mallocz((length / 2 + 2) * 16 + 64)!).bindMemory(to: AVComplexDouble.self, capacity: length / 2 + 6)
    }

    deinit {
        av_tx_uninit(&context)
        av_free(input)
        av_free(output)
    }

    /// |X[k]|² for k = 0…N/2 of `frame` (zero-padded to N when shorter).
    public func powerSpectrum(_ frame: UnsafeBufferPointer<Double>, into power: UnsafeMutableBufferPointer<Double>) {
        run(frame)
        for k in 0...(length / 2) { power[k] = output[k].re * output[k].re + output[k].im * output[k].im }
    }

    /// |X[k]| for k = 0…N/2 of `frame` (zero-padded to N when shorter).
    public func magnitude(_ frame: UnsafeBufferPointer<Double>, into magnitude: UnsafeMutableBufferPointer<Double>) {
        run(frame)
        for k in 0...(length / 2) { magnitude[k] = (output[k].re * output[k].re + output[k].im * output[k].im).squareRoot() }
    }

    private func run(_ frame: UnsafeBufferPointer<Double>) {
        let n = min(frame.count, length)
        input.update(from: frame.baseAddress!, count: n)
        (input + n).initialize(repeating: 0, count: length - n)
        transform(context, output, input, MemoryLayout<AVComplexDouble>.stride)
    }
}
